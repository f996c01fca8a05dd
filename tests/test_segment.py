"""asr.segment: cuts at pauses, fixed windows with overlap where there is none."""

import math

import numpy as np
import pytest
import torch

from asr.segment import Chunk, find_cut, split_chunks

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
    chunks = list(split_chunks(_blocks(x), SR, max_seconds=8.0, overlap_seconds=1.0))
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
    chunks = list(split_chunks(_blocks(x, 4.0), SR, max_seconds=10.0, overlap_seconds=1.0))
    assert [c.start for c in chunks] == [0, 9 * SR, 18 * SR, 27 * SR]
    assert [len(c.wave) for c in chunks] == [10 * SR, 10 * SR, 10 * SR, 8 * SR]
    for a, b in zip(chunks, chunks[1:]):
        assert a.keep_until == b.keep_from == (b.start + 0.5 * SR) / SR  # the overlap's midpoint
        assert torch.equal(a.wave[-SR:], b.wave[:SR])
    # a word is kept by exactly one chunk
    for start in np.arange(0, 34.5, 0.37):
        assert sum(c.keeps(start, start + 0.4) for c in chunks) == 1


def test_short_recording_is_one_untouched_chunk():
    x = _bursts([1.0, 1.0], 0.3)
    (chunk,) = split_chunks(_blocks(x, 0.5), SR, max_seconds=20.0)
    assert chunk.start == 0 and torch.equal(chunk.wave, torch.from_numpy(x))


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
