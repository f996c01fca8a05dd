"""The offline demo corpus, synthesised with eSpeak NG (``recipes/demo``).

Digit strings and short command phrases from a fixed word list, spoken by many eSpeak NG
voice variants at random rates and pitches. The split is by voice: dev and test voices
never occur in training, so the test WER measures generalisation to unseen voices.

    python recipes/demo/prepare.py --out-dir exp/demo/data
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from asr.synth import VARIANTS, random_voice, write_corpus

DIGITS = "zero one two three four five six seven eight nine".split()
WORDS = ("yes no up down left right go stop start open close turn on off play pause next back "
         "call home red green blue light music volume please now").split()
DEV_VARIANTS = ("f2", "m4", "klatt2", "Mario", "grandpa", "steph")
TEST_VARIANTS = ("f4", "m6", "klatt3", "Lee", "linda", "zac")


def sentence(rng: np.random.Generator) -> str:
    """A digit string (1-5 digits) or a command phrase (1-4 words), even odds."""
    if rng.random() < 0.5:
        return " ".join(rng.choice(DIGITS, size=rng.integers(1, 6)))
    return " ".join(rng.choice(WORDS, size=rng.integers(1, 5)))


def prepare_demo(out_dir: str | Path, n_train: int = 3000, n_dev: int = 200, n_test: int = 200, seed: int = 0) -> None:
    """Write ``wav/`` and ``{train,dev,test}.jsonl`` under ``out_dir``."""
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    held_out = set(DEV_VARIANTS) | set(TEST_VARIANTS)
    splits = {"train": (n_train, [v for v in VARIANTS if v not in held_out]),
              "dev": (n_dev, DEV_VARIANTS), "test": (n_test, TEST_VARIANTS)}
    for split, (n, variants) in splits.items():
        items = [(f"{split}-{i:05d}", sentence(rng), random_voice(rng, variants)) for i in range(n)]
        utts = write_corpus(out_dir / "wav" / split, items, seed=seed + len(split), manifest=out_dir / f"{split}.jsonl")
        hours = sum(u.duration for u in utts) / 3600
        print(f"{split}: {len(utts)} utterances, {hours:.2f} h, {len(variants)} voice variants")
