"""One picture per transcription (``asr-transcribe --plot DIR``): where did recognition go wrong?

Three panels on one time axis: the waveform with the recognised words shaded at their
timestamps, the log-mel features the model saw, and the CTC posteriors (one row per
symbol, blank at the bottom) with each word written above its span. Covers the first
``--plot-seconds`` of the input. Matplotlib with the Agg backend (no display needed).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from asr.formats import Transcript


def plot_transcript(recognizer, t: Transcript, out_png: str | os.PathLike) -> None:
    """Write the plot of ``t`` (which must carry ``head`` audio and ``posteriors``) to
    ``out_png`` atomically. ``recognizer`` supplies the features, vocabulary and frame shift."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rate, shift = recognizer.sample_rate, recognizer.frame_shift
    wave = t.head if t.head is not None else torch.zeros(1)
    seconds = len(wave) / rate
    fig, axes = plt.subplots(3, 1, figsize=(max(8.0, min(40.0, 2.0 + seconds * 1.2)), 8), sharex=True,
                             gridspec_kw={"height_ratios": [1, 1.4, 2]})
    ax_wave, ax_mel, ax_post = axes

    time = torch.arange(len(wave)) / rate
    step = max(1, len(wave) // 20000)  # thin out long waveforms
    ax_wave.plot(time[::step].numpy(), wave[::step].numpy(), lw=0.4, color="C0")
    words = [w for w in t.words if w.start < seconds]
    for w in words:
        ax_wave.axvspan(w.start, w.end, color="C1", alpha=0.25, lw=0)
    ax_wave.set(ylabel="amplitude", title=f"{t.audio}: {t.text[:120]}" + ("..." if len(t.text) > 120 else ""))
    ax_wave.title.set_fontsize(9)

    with torch.no_grad():
        device = next(iter(recognizer.features.buffers()), torch.zeros(0)).device
        feats, _, _ = recognizer.features.log_mel(wave[None].to(device), torch.tensor([len(wave)], device=device))
    hop = recognizer.feature_cfg.hop_length / rate
    ax_mel.imshow(feats[0].T.cpu().numpy(), origin="lower", aspect="auto", cmap="magma",
                  extent=(0, feats.shape[1] * hop, 0, feats.shape[2]))
    ax_mel.set(ylabel="mel bin")

    labels = recognizer.vocab.labels
    if t.posteriors is not None and len(t.posteriors):
        probs = t.posteriors.float().exp().T.numpy()  # (vocab, frames)
        ax_post.imshow(probs, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
                       extent=(0, probs.shape[1] * shift, -0.5, probs.shape[0] - 0.5))
    ax_post.set_yticks(range(len(labels)))
    ax_post.set_yticklabels(["_" if c == "<blank>" else ("\u2423" if c == " " else c) for c in labels], fontsize=6)
    for w in words:
        ax_post.axvspan(w.start, w.end, color="C1", alpha=0.15, lw=0)
        for ax, label in ((ax_wave, w.word), (ax_post, f"{w.word}\n{w.confidence:.2f}")):
            ax.text((w.start + w.end) / 2, 0.97, label, transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=7, color="C3" if w.confidence < 0.5 else "k", clip_on=True,
                    bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 1})
    ax_post.set(xlabel="seconds", ylabel="CTC posterior", xlim=(0, max(seconds, shift)))
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=90)
        os.replace(tmp, out_png)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
