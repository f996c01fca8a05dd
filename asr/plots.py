"""Training curves from ``metrics.jsonl`` (matplotlib, no display needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path


def plot_curves(metrics_path: str | os.PathLike, out_png: str | os.PathLike) -> None:
    """Plot train and dev loss and dev WER per epoch to ``out_png`` (written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # A run killed mid-write leaves a partial line, and a resumed run appends after it and
    # may repeat an epoch: skip unreadable lines and keep the last record of each epoch.
    by_epoch = {}
    for line in Path(metrics_path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(r, dict) and r.get("kind") == "epoch":
            by_epoch[r["epoch"]] = r
    epochs = [by_epoch[e] for e in sorted(by_epoch)]
    if not epochs:
        return
    x = [r["epoch"] for r in epochs]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax1.plot(x, [r["train_loss"] for r in epochs], "o-", label="train")
    ax1.plot(x, [r["dev_loss"] for r in epochs], "s-", label="dev")
    ax1.set(xlabel="epoch", ylabel="CTC loss (per token)", title="loss")
    ax1.legend()
    ax2.plot(x, [100 * r["dev_wer"] for r in epochs], "o-", color="C2", label="WER")
    ax2.plot(x, [100 * r["dev_cer"] for r in epochs], "s--", color="C3", label="CER")
    ax2.set(xlabel="epoch", ylabel="%", title="dev error rates")
    ax2.legend()
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, out_png)
