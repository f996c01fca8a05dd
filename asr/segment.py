"""Cutting long recordings into chunks the model can take, in bounded memory.

:func:`split_chunks` reads a stream of waveform blocks and emits chunks of at most
``max_seconds``. It cuts in the longest pause it finds (librosa's energy-based
:func:`librosa.effects.split`), preferring pauses in the second half of the window so
chunks stay long; where a window has no pause (music, babble, a continuous talker) it
falls back to a fixed cut with ``overlap_seconds`` of overlap, and the two chunks share
the overlap at its midpoint: each word is kept by the chunk whose half holds its centre
(:meth:`Chunk.keeps`). Only the current window is ever held in memory.

Every pause of ``cut_pause`` seconds or more between speech ends a chunk too, and the
chunks of a recording that was cut are trimmed to their speech plus ``margin_seconds`` at
either end: chunks then look like the utterances a model is trained on (a phrase, a little
silence around it) rather than runs of sentences adrift in long silences. A chunk without
speech is dropped.
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


def _digital_silence(wave: np.ndarray) -> bool:
    """Whether ``wave`` is zero, or within 1e-4 of it, throughout."""
    return float(np.abs(wave).max(initial=0.0)) < 1e-4


def speech_intervals(wave: np.ndarray, sample_rate: int, top_db: float = 35.0, ref: float | None = None) -> np.ndarray:
    """``(intervals, 2)`` sample bounds of the stretches of ``wave`` within ``top_db`` of
    ``ref`` (a frame's mean square; None: the loudest frame of ``wave``)."""
    hop = sample_rate // 100  # 10 ms
    return librosa.effects.split(wave, top_db=top_db, frame_length=4 * hop, hop_length=hop,
                                 ref=np.max if ref is None else ref)


def peak_power(wave: np.ndarray, sample_rate: int) -> float:
    """Mean square of the loudest 40 ms frame of ``wave`` (the ``ref`` of :func:`find_cut`)."""
    hop = sample_rate // 100
    return float(librosa.feature.rms(y=wave, frame_length=4 * hop, hop_length=hop).max(initial=0.0)) ** 2


def find_cut(wave: np.ndarray, sample_rate: int, min_pause: float = 0.15, top_db: float = 35.0,
             ref: float | None = None) -> int | None:
    """The sample to cut ``wave`` at: the middle of its longest pause in the second half,
    else of its last pause; None if it has no pause of ``min_pause`` seconds.

    A pause is a stretch more than ``top_db`` below ``ref`` (a frame's mean square, as
    :func:`peak_power` gives; None: the loudest frame of ``wave``), found by librosa.
    """
    if _digital_silence(wave):
        return len(wave)
    bounds = [0, *speech_intervals(wave, sample_rate, top_db, ref).ravel().tolist(), len(wave)]
    gaps = [(a, b) for a, b in zip(bounds[::2], bounds[1::2]) if b - a >= min_pause * sample_rate]
    gaps = [(a, b) for a, b in gaps if b > 0 and (a + b) // 2 > 0]
    if not gaps:
        return None
    late = [g for g in gaps if (g[0] + g[1]) / 2 >= len(wave) / 2]
    a, b = max(late, key=lambda g: g[1] - g[0]) if late else gaps[-1]
    return min((a + b) // 2, len(wave))


def speech_bounds(wave: np.ndarray, sample_rate: int, margin: int, top_db: float = 35.0,
                  ref: float | None = None) -> tuple[int, int] | None:
    """``[start, end)`` samples of ``wave`` from ``margin`` samples before its first speech to
    ``margin`` after its last (speech: within ``top_db`` of ``ref``, as in :func:`find_cut`);
    None if it has no speech."""
    if _digital_silence(wave):
        return None
    speech = speech_intervals(wave, sample_rate, top_db, ref)
    if not len(speech):
        return None
    return max(int(speech[0, 0]) - margin, 0), min(int(speech[-1, 1]) + margin, len(wave))


def first_long_pause(wave: np.ndarray, sample_rate: int, pause: float, top_db: float = 35.0,
                     ref: float | None = None) -> int | None:
    """The middle of the first pause of at least ``pause`` seconds between two stretches of
    speech in ``wave`` (judged as in :func:`find_cut`), or None."""
    if _digital_silence(wave):
        return None
    speech = speech_intervals(wave, sample_rate, top_db, ref)
    for end, start in zip(speech[:-1, 1], speech[1:, 0]):
        if start - end >= pause * sample_rate:
            return int(end + start) // 2
    return None


def _chunk_sizes(sample_rate: int, max_seconds: float, overlap_seconds: float) -> tuple[int, int]:
    """``(max_len, overlap)`` in samples, checked."""
    max_len, overlap = int(max_seconds * sample_rate), int(overlap_seconds * sample_rate)
    if max_len < 1 or not 0 <= overlap < max_len // 2:
        raise ValueError(f"need max_seconds > 0 and 0 <= overlap_seconds < max_seconds / 2, "
                         f"got {max_seconds} and {overlap_seconds}")
    return max_len, overlap


def split_chunks(blocks: Iterable[torch.Tensor], sample_rate: int, max_seconds: float = 20.0,
                 overlap_seconds: float = 1.0, min_pause: float = 0.15, top_db: float = 35.0,
                 margin_seconds: float | None = 0.3, cut_pause: float | None = 0.3) -> Iterator[Chunk]:
    """Chunks of at most ``max_seconds`` from consecutive waveform blocks.

    Parameters
    ----------
    blocks : iterable of torch.Tensor
        ``(samples,)`` pieces of one recording, in order (e.g. :meth:`asr.audio.AudioFile.blocks`).
    sample_rate : int
    max_seconds : float
        Longest chunk. A recording this short without a pause of ``cut_pause`` seconds
        comes back as one chunk, untouched.
    overlap_seconds : float
        Overlap of two chunks cut where there is no pause.
    min_pause, top_db
        What counts as a pause (see :func:`find_cut`).
    margin_seconds : float or None
        Silence kept before the first and after the last speech of each chunk of a
        recording that was cut (:func:`speech_bounds`); None keeps it all. Pauses and
        speech are judged against the loudest frame heard so far (or ahead, in the current
        window), so a window of faint noise alone is no speech.
    cut_pause : float or None
        Every pause between speech at least this long ends a chunk, so chunks are phrases
        like the utterances a model is trained on, not runs of sentences whose boundaries
        it never learnt to mark; None cuts only where ``max_seconds`` forces it.

    Yields
    ------
    Chunk
        Numbered from 0. With ``margin_seconds=None`` and without overlap, the chunks'
        waves concatenate to the recording.
    """
    max_len, overlap = _chunk_sizes(sample_rate, max_seconds, overlap_seconds)
    margin = None if margin_seconds is None else int(margin_seconds * sample_rate)
    buf = np.zeros(0, np.float32)
    buf_start, index, keep_from = 0, 0, 0.0
    cut_before = False  # whether the recording has been cut (its chunks get trimmed)
    peak = 0.0  # the loudest frame's mean square so far (the reference for speech)

    def long_pause(wave: np.ndarray) -> int | None:
        return None if cut_pause is None else first_long_pause(wave, sample_rate, cut_pause, top_db, peak)

    def chunk(wave: np.ndarray, keep_until: float = math.inf) -> Iterator[Chunk]:
        nonlocal index
        a, b = 0, len(wave)
        if cut_before and margin is not None:
            bounds = speech_bounds(wave, sample_rate, margin, top_db, peak)
            if bounds is None:
                return
            a, b = bounds
        yield Chunk(index, buf_start + a, torch.from_numpy(wave[a:b].copy()), keep_from, keep_until)
        index += 1

    def advance(cut: int, keep: float) -> None:
        nonlocal buf, buf_start, keep_from
        buf, buf_start, keep_from = buf[cut:], buf_start + cut, keep

    for block in blocks:
        buf = np.concatenate([buf, block.numpy()]) if len(buf) else block.numpy()
        while len(buf) > max_len:
            cut_before = True
            peak = max(peak, peak_power(buf[:max_len], sample_rate), 1e-10)
            cut = long_pause(buf[:max_len]) or find_cut(buf[:max_len], sample_rate, min_pause, top_db, peak)
            if cut:
                yield from chunk(buf[:cut])
                advance(cut, (buf_start + cut) / sample_rate)
            else:
                boundary = (buf_start + max_len - overlap / 2) / sample_rate
                yield from chunk(buf[:max_len], boundary)
                advance(max_len - overlap, boundary)
    peak = max(peak, peak_power(buf, sample_rate), 1e-10)
    while (cut := long_pause(buf)) is not None:
        cut_before = True
        yield from chunk(buf[:cut])
        advance(cut, (buf_start + cut) / sample_rate)
    if len(buf):
        yield from chunk(buf)
