"""Cutting long recordings into chunks the model can take, in bounded memory.

:func:`split_chunks` reads a stream of waveform blocks and emits chunks of at most
``max_seconds``. It cuts in the longest pause it finds (librosa's energy-based
:func:`librosa.effects.split`), preferring pauses in the second half of the window so
chunks stay long; where a window has no pause (music, babble, a continuous talker) it
falls back to a fixed cut with ``overlap_seconds`` of overlap, and the two chunks share
the overlap at its midpoint: each word is kept by the chunk whose half holds its centre
(:meth:`Chunk.keeps`). Only the current window is ever held in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import librosa
import numpy as np
import torch


@dataclass
class Chunk:
    """A piece of a recording.

    Attributes
    ----------
    index : int
        Position in the recording, from 0.
    start : int
        First sample, counted from the start of the recording.
    wave : torch.Tensor
        ``(samples,)`` float32.
    keep_from, keep_until : float
        Seconds from the start of the recording: words whose centre lies outside
        ``[keep_from, keep_until)`` belong to the neighbouring chunk (overlap stitching).
    """

    index: int
    start: int
    wave: torch.Tensor
    keep_from: float = 0.0
    keep_until: float = math.inf

    def keeps(self, start: float, end: float) -> bool:
        """Whether a word spanning ``[start, end)`` seconds (absolute) belongs to this chunk."""
        centre = (start + end) / 2
        return self.keep_from <= centre < self.keep_until


def find_cut(wave: np.ndarray, sample_rate: int, min_pause: float = 0.15, top_db: float = 35.0) -> int | None:
    """The sample to cut ``wave`` at: the middle of its longest pause in the second half,
    else of its last pause; None if it has no pause of ``min_pause`` seconds.

    A pause is a stretch more than ``top_db`` below the loudest frame (librosa).
    """
    hop = sample_rate // 100  # 10 ms
    if float(np.abs(wave).max(initial=0.0)) < 1e-4:  # digital silence throughout
        return len(wave)
    speech = librosa.effects.split(wave, top_db=top_db, frame_length=4 * hop, hop_length=hop)
    bounds = [0, *speech.ravel().tolist(), len(wave)]
    gaps = [(a, b) for a, b in zip(bounds[::2], bounds[1::2]) if b - a >= min_pause * sample_rate]
    gaps = [(a, b) for a, b in gaps if b > 0 and (a + b) // 2 > 0]
    if not gaps:
        return None
    late = [g for g in gaps if (g[0] + g[1]) / 2 >= len(wave) / 2]
    a, b = max(late, key=lambda g: g[1] - g[0]) if late else gaps[-1]
    return min((a + b) // 2, len(wave))


def split_chunks(blocks: Iterable[torch.Tensor], sample_rate: int, max_seconds: float = 20.0,
                 overlap_seconds: float = 1.0, min_pause: float = 0.15, top_db: float = 35.0) -> Iterator[Chunk]:
    """Chunks of at most ``max_seconds`` from consecutive waveform blocks.

    Parameters
    ----------
    blocks : iterable of torch.Tensor
        ``(samples,)`` pieces of one recording, in order (e.g. :meth:`asr.audio.AudioFile.blocks`).
    sample_rate : int
    max_seconds : float
        Longest chunk. A recording this short comes back as one chunk, untouched.
    overlap_seconds : float
        Overlap of two chunks cut where there is no pause.
    min_pause, top_db
        What counts as a pause (see :func:`find_cut`).

    Yields
    ------
    Chunk
        Without overlap the chunks' waves concatenate to the recording.
    """
    max_len = int(max_seconds * sample_rate)
    overlap = int(overlap_seconds * sample_rate)
    if max_len < 1 or not 0 <= overlap < max_len // 2:
        raise ValueError(f"need max_seconds > 0 and 0 <= overlap_seconds < max_seconds / 2, "
                         f"got {max_seconds} and {overlap_seconds}")
    buf = np.zeros(0, np.float32)
    buf_start, index, keep_from = 0, 0, 0.0
    for block in blocks:
        buf = np.concatenate([buf, block.numpy()]) if len(buf) else block.numpy()
        while len(buf) > max_len:
            cut = find_cut(buf[:max_len], sample_rate, min_pause, top_db)
            if cut:
                yield Chunk(index, buf_start, torch.from_numpy(buf[:cut].copy()), keep_from)
                buf, buf_start, keep_from = buf[cut:], buf_start + cut, (buf_start + cut) / sample_rate
            else:
                boundary = (buf_start + max_len - overlap / 2) / sample_rate
                yield Chunk(index, buf_start, torch.from_numpy(buf[:max_len].copy()), keep_from, boundary)
                buf, buf_start, keep_from = buf[max_len - overlap:], buf_start + max_len - overlap, boundary
            index += 1
    if len(buf):
        yield Chunk(index, buf_start, torch.from_numpy(buf.copy()), keep_from)
