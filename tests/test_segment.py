"""asr.segment: cuts at pauses, fixed windows with overlap where there is none."""

import math

import numpy as np
import pytest
import torch

from asr.segment import Chunk, find_cut, speech_bounds, split_chunks

SR = 16000


def _bursts(durations, gap, noise=1e-4, seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for d in durations:
        parts.append(0.5 * np.sin(np.arange(int(SR * d)) * 0.2).astype(np.float32))
        parts.append(np.zeros(int(SR * gap), np.float32))
    x = np.concatenate(parts)
    return x + rng.normal(0, noise, len(x)).astype(np.float32)


def _blocks(x, seconds=3.0):
    n = int(SR * seconds)
    return [torch.from_numpy(x[i:i + n]) for i in range(0, len(x), n)]


def test_cuts_only_in_pauses_and_keeps_every_sample():
    durations = np.random.default_rng(1).uniform(1.0, 4.0, 20)
    x = _bursts(durations, gap=0.5)
    chunks = list(split_chunks(_blocks(x), SR, max_seconds=8.0, overlap_seconds=1.0, margin_seconds=None))
    assert len(chunks) > 5
    assert all(len(c.wave) <= 8 * SR for c in chunks)
    assert torch.equal(torch.cat([c.wave for c in chunks]), torch.from_numpy(x))  # no overlap, nothing lost
    assert [c.index for c in chunks] == list(range(len(chunks)))
    loud = np.abs(x) > 0.05
    for c in chunks[1:]:  # every cut lies in silence
        assert not loud[max(0, c.start - 400):c.start + 400].any()
        assert c.keep_from == c.start / SR and c.keep_until == math.inf


def test_without_pauses_falls_back_to_overlapping_windows():
    x = np.random.default_rng(0).normal(0, 0.3, SR * 35).astype(np.float32)
    chunks = list(split_chunks(_blocks(x, 4.0), SR, max_seconds=10.0, overlap_seconds=1.0))  # nothing to trim
    assert [c.start for c in chunks] == [0, 9 * SR, 18 * SR, 27 * SR]
    assert [len(c.wave) for c in chunks] == [10 * SR, 10 * SR, 10 * SR, 8 * SR]
    for a, b in zip(chunks, chunks[1:]):
        assert a.keep_until == b.keep_from == (b.start + 0.5 * SR) / SR  # the overlap's midpoint
        assert torch.equal(a.wave[-SR:], b.wave[:SR])
    # a word is kept by exactly one chunk
    for start in np.arange(0, 34.5, 0.37):
        assert sum(c.keeps(start, start + 0.4) for c in chunks) == 1


def test_short_recording_without_a_long_pause_is_one_untouched_chunk():
    x = _bursts([1.0, 1.0], 0.2)
    (chunk,) = split_chunks(_blocks(x, 0.5), SR, max_seconds=20.0)
    assert chunk.start == 0 and torch.equal(chunk.wave, torch.from_numpy(x))


def test_every_long_pause_ends_a_chunk_even_in_a_short_recording():
    x = _bursts([1.0, 0.5, 1.0], 0.6)  # 3.7 s: under max_seconds, but two 0.6 s pauses
    chunks = list(split_chunks(_blocks(x, 0.5), SR, max_seconds=20.0, margin_seconds=0.1))
    assert len(chunks) == 3
    for c, start in zip(chunks, (0.0, 1.6, 2.7)):
        assert abs(c.start / SR - max(start - 0.1, 0)) < 0.03  # trimmed to the burst plus 0.1 s
    assert len(list(split_chunks(_blocks(x, 0.5), SR, max_seconds=20.0, cut_pause=0.7))) == 1


def test_chunks_of_a_long_recording_are_trimmed_to_their_speech_plus_a_margin():
    rng = np.random.default_rng(2)
    x = np.concatenate([np.zeros(3 * SR, np.float32), _bursts(rng.uniform(0.5, 2.0, 12), gap=1.5),
                        np.zeros(6 * SR, np.float32)])  # long silences before, between and after
    chunks = list(split_chunks(_blocks(x), SR, max_seconds=6.0, margin_seconds=0.3))
    assert [c.index for c in chunks] == list(range(len(chunks)))
    loud = np.abs(x) > 0.05
    covered = np.zeros(len(x), bool)
    for c in chunks:
        assert torch.equal(c.wave, torch.from_numpy(x[c.start:c.start + len(c.wave)]))
        speech = np.flatnonzero(loud[c.start:c.start + len(c.wave)])
        assert 0.25 * SR <= speech[0] <= 0.35 * SR  # 0.3 s of silence kept before the first speech
        assert 0.25 * SR <= len(c.wave) - speech[-1] <= 0.35 * SR  # and after the last
        covered[c.start:c.start + len(c.wave)] = True
    assert covered[loud].all()  # no speech lost
    assert covered.sum() < 0.75 * len(x)  # most of the silence is
    assert chunks[0].start > 2.5 * SR and chunks[-1].start + len(chunks[-1].wave) < len(x) - 5 * SR


def test_digital_silence_makes_no_chunk_and_short_recordings_are_not_trimmed():
    x = np.concatenate([_bursts([1.0], 0.1), np.zeros(30 * SR, np.float32), _bursts([1.0], 0.1)])
    x[int(1.1 * SR):-int(1.1 * SR)] = 0  # no noise in the long silence
    chunks = list(split_chunks(_blocks(x), SR, max_seconds=8.0))
    assert [c.index for c in chunks] == [0, 1]
    assert chunks[1].start > 30 * SR
    assert list(split_chunks(_blocks(np.zeros(40 * SR, np.float32)), SR, max_seconds=8.0)) == []
    assert speech_bounds(np.zeros(SR, np.float32), SR, 100) is None
    short = np.concatenate([np.zeros(3 * SR, np.float32), _bursts([1.0], 3.0)])
    (chunk,) = split_chunks(_blocks(short), SR, max_seconds=8.0)
    assert torch.equal(chunk.wave, torch.from_numpy(short))


def test_find_cut_prefers_the_longest_late_pause():
    x = np.concatenate([_bursts([2.0], 0.2, seed=1), _bursts([2.0], 0.8, seed=2), _bursts([2.0], 0.3, seed=3)])
    cut = find_cut(x, SR)
    assert abs(cut / SR - (2.0 + 0.2 + 2.0 + 0.4)) < 0.1  # middle of the 0.8 s pause
    assert find_cut(np.random.default_rng(0).normal(0, 0.3, SR * 5).astype(np.float32), SR) is None
    assert find_cut(np.zeros(SR, np.float32), SR) == SR  # digital silence: cut anywhere


def test_rejects_bad_settings():
    with pytest.raises(ValueError):
        list(split_chunks([torch.zeros(10)], SR, max_seconds=2.0, overlap_seconds=1.5))


def test_chunk_keeps_by_centre():
    c = Chunk(0, 0, torch.zeros(1), keep_from=1.0, keep_until=2.0)
    assert c.keeps(0.8, 1.4) and not c.keeps(0.5, 1.4) and not c.keeps(1.9, 2.3)
