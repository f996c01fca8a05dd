"""Summarise a cross-validation: one row per held-out fold, then mean, min and max.

    python recipes/folds.py EXP_DIR FOLD [FOLD ...]

reads ``EXP_DIR/fold-FOLD/{dev,test}_wer_*.txt`` (asr-evaluate's summary lines, as the
recipes' stage 3 writes them) and prints a Markdown table of the WERs. The mean is over
folds (each held-out speaker counts once), not over words.
"""

from __future__ import annotations

import re
import statistics
import sys
from pathlib import Path

SUMMARY = re.compile(r"WER ([\d.]+)% CER ([\d.]+)%")


def read_fold(fold_dir: Path) -> dict[str, float]:
    """``{"dev greedy": wer, ...}`` from the fold's ``*_wer_*.txt`` files (WER in percent)."""
    out = {}
    for path in sorted(fold_dir.glob("*_wer_*.txt")):
        split, _, decoding = path.stem.partition("_wer_")
        match = SUMMARY.search(path.read_text())
        if match:
            out[f"{split} {decoding}"] = float(match.group(1))
    return out


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    exp_dir, folds = Path(argv[0]), argv[1:]
    results = {f: read_fold(exp_dir / f"fold-{f}") for f in folds}
    missing = [f for f, r in results.items() if not r]
    if missing:
        print(f"error: no WER files in {', '.join(str(exp_dir / f'fold-{f}') for f in missing)}; "
              "run those folds to stage 3 first", file=sys.stderr)
        return 1
    columns = sorted({c for r in results.values() for c in r}, key=lambda c: (not c.startswith("dev"), c))
    print("| held out | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for fold, r in results.items():
        print(f"| {fold} | " + " | ".join(f"{r[c]:.2f}%" if c in r else "-" for c in columns) + " |")
    for name, fn in (("mean", statistics.mean), ("min", min), ("max", max)):
        cells = [fn([r[c] for r in results.values() if c in r]) for c in columns]
        print(f"| **{name}** | " + " | ".join(f"{v:.2f}%" for v in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
