"""Transcript writers: ``txt``, ``json``, ``srt``, ``vtt``, ``tsv`` and ``ctm``.

:class:`Transcript` is one input's result (what :func:`asr.transcribe.transcribe_files`
yields); each writer turns one into text. ``txt`` and ``json``
are one line per input (so several inputs stream to stdout); ``srt``/``vtt`` are subtitle
cues built from the word timestamps; ``tsv`` is one word a line:
``start<TAB>end<TAB>confidence<TAB>word`` (seconds), after a header line; ``ctm`` is NIST's
time-marked conversation format, one word a line: ``recording channel start duration word
confidence`` (the recording is the file name without its extension, blanks replaced by ``_``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import torch

from asr.align import Word
from asr.greedy import Hypothesis

FORMATS = ("txt", "json", "srt", "vtt", "tsv", "ctm")
#: Formats that hold one input per file (several inputs need ``--output-dir``).
SINGLE_INPUT = ("srt", "vtt")
TSV_HEADER = "start\tend\tconfidence\tword"


@dataclass
class Transcript:
    """One input's result. ``words`` carry times in seconds from the input's start;
    ``posteriors`` (``(frames, vocab)`` log-probabilities) and ``head``
    (``(samples,)`` audio) cover the first ``plot_seconds`` when asked for (plots), else None."""

    audio: str
    text: str
    duration: float
    nbest: list[Hypothesis]
    words: list[Word] = field(default_factory=list)
    posteriors: torch.Tensor | None = None
    head: torch.Tensor | None = None


def to_json(t: Transcript) -> dict:
    """``{"audio", "text", "duration", "words": [{word, start, end, confidence}], "nbest"?}``;
    ``nbest`` (a list of ``{text, score}``) only when the decoder returned more than one."""
    rec = {"audio": t.audio, "text": t.text, "duration": round(t.duration, 3),
           "words": [w.to_json() for w in t.words]}
    if len(t.nbest) > 1:
        rec["nbest"] = [{"text": h.text, "score": round(h.score, 4)} for h in t.nbest]
    return rec


def cues(words: list[Word], max_chars: int = 42, max_seconds: float = 6.0, max_gap: float = 1.0) -> list[list[Word]]:
    """Group words into subtitle cues: a new cue after a pause of ``max_gap`` seconds, or
    when the line would exceed ``max_chars`` characters or ``max_seconds``."""
    groups: list[list[Word]] = []
    for w in words:
        if groups:
            g = groups[-1]
            chars = sum(len(x.word) + 1 for x in g) + len(w.word)
            if w.start - g[-1].end < max_gap and chars <= max_chars and w.end - g[0].start <= max_seconds:
                g.append(w)
                continue
        groups.append([w])
    return groups


def _clock(seconds: float, sep: str) -> str:
    ms = max(0, int(round(seconds * 1000)))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _subtitles(t: Transcript, sep: str, numbered: bool) -> str:
    out = []
    for i, g in enumerate(cues(t.words), 1):
        lines = [str(i)] if numbered else []
        lines += [f"{_clock(g[0].start, sep)} --> {_clock(g[-1].end, sep)}", " ".join(w.word for w in g)]
        out.append("\n".join(lines))
    return "\n\n".join(out) + ("\n" if out else "")


def to_srt(t: Transcript) -> str:
    """SubRip: numbered cues, ``HH:MM:SS,mmm --> HH:MM:SS,mmm``."""
    return _subtitles(t, ",", numbered=True)


def to_vtt(t: Transcript) -> str:
    """WebVTT: a ``WEBVTT`` header, then cues with ``HH:MM:SS.mmm`` times."""
    body = _subtitles(t, ".", numbered=False)
    return "WEBVTT\n\n" + body


def tsv_rows(t: Transcript, prefix: str = "") -> str:
    return "".join(f"{prefix}{w.start:.3f}\t{w.end:.3f}\t{w.confidence:.4f}\t{w.word}\n" for w in t.words)


def to_ctm(t: Transcript) -> str:
    name = os.path.splitext(os.path.basename(t.audio))[0] or "stdin"
    rec = "_".join(name.split()) or "_"
    return "".join(f"{rec} 1 {w.start:.3f} {max(w.end - w.start, 0.0):.3f} {w.word} {w.confidence:.4f}\n"
                   for w in t.words)


def render(t: Transcript, fmt: str, several: bool = False, header: bool = True) -> str:
    """The text for one transcript in ``fmt``, ending in a newline (empty for a tsv/srt
    without words). ``several``: txt lines and tsv rows start with ``path<TAB>`` (stdout
    with several inputs). ``header``: the tsv header line."""
    if fmt == "txt":
        return f"{t.audio}\t{t.text}\n" if several else f"{t.text}\n"
    if fmt == "json":
        return json.dumps(to_json(t), ensure_ascii=False) + "\n"
    if fmt == "srt":
        return to_srt(t)
    if fmt == "vtt":
        return to_vtt(t)
    if fmt == "tsv":
        head = ("audio\t" if several else "") + TSV_HEADER + "\n" if header else ""
        return head + tsv_rows(t, f"{t.audio}\t" if several else "")
    if fmt == "ctm":
        return to_ctm(t)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
