"""Contracts checked as properties over many seeded random cases (plain loops, no extra
dependency): where one hand-picked example can hide an off-by-one, a few dozen random ones
rarely do. Each case's seed is in the assertion message, so a failure can be replayed."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.data import DurationBatchSampler, read_manifest, read_manifest_table, write_manifest, Utterance
from asr.decoding import GreedyDecoder
from asr.features import FeatureConfig, LogMel
from asr.models import BiRNNConfig as ModelConfig, BiRNNCTC
from asr.text import Vocabulary


@pytest.mark.parametrize("seed", range(40))
def test_sampler_shards_cover_each_utterance_at_most_once_and_equally(seed):
    """Every epoch, across ranks: batches are disjoint, no utterance twice, every rank the
    same number of batches, only the remainder (< ranks batches) left out, limits kept,
    and the same batches again for the same seed and epoch."""
    rng = random.Random(seed)
    n = rng.randint(1, 300)
    durations = [rng.choice([rng.uniform(0.2, 3), rng.uniform(3, 35)]) for _ in range(n)]
    max_seconds, max_size = rng.uniform(5, 120), rng.choice([0, 1, 4, 32])
    ranks, epoch = rng.randint(1, 5), rng.randint(0, 9)

    def shards():
        out = []
        for r in range(ranks):
            s = DurationBatchSampler(durations, max_seconds, max_size, shuffle=bool(seed % 2), seed=seed,
                                     num_replicas=ranks, rank=r)
            s.set_epoch(epoch)
            out.append(list(s))
            assert len(out[-1]) == len(s), seed
        return out

    got = shards()
    whole = DurationBatchSampler(durations, max_seconds, max_size, shuffle=bool(seed % 2), seed=seed)
    whole.set_epoch(epoch)
    items = [i for shard in got for b in shard for i in b]
    assert len(items) == len(set(items)), seed
    assert len({len(shard) for shard in got}) == 1, seed
    assert len(list(whole)) - sum(map(len, got)) < ranks, seed
    if ranks == 1:
        assert sorted(items) == list(range(n)), seed
    for b in (b for shard in got for b in shard):
        assert not max_size or len(b) <= max_size, seed
        assert len(b) == 1 or len(b) * max(durations[i] for i in b) <= max_seconds + 1e-9, seed
    assert shards() == got, seed


@pytest.mark.parametrize("seed", range(12))
def test_features_of_a_batch_equal_each_utterance_alone(seed):
    """Random lengths, including ones shorter than the FFT window and ones a sample either
    side of a hop boundary: frame counts follow num_frames, features do not depend on the
    batch, and padding frames are zero."""
    g = torch.Generator().manual_seed(seed)
    cfg = FeatureConfig(n_mels=24, normalize=["speech", "utterance"][seed % 2])
    lm = LogMel(cfg)
    hop = cfg.hop_length
    lengths = [int(torch.randint(50, 12000, (1,), generator=g)) for _ in range(3)]
    lengths.append(hop * int(torch.randint(2, 40, (1,), generator=g)) + [-1, 0, 1][seed % 3])
    waves = [0.1 * torch.randn(n, generator=g) for n in lengths]
    feats, frames = lm(torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), torch.tensor(lengths))
    assert frames.tolist() == [min(cfg.num_frames(n), feats.shape[1]) for n in lengths], seed
    for i, w in enumerate(waves):
        alone, n = lm(w[None], torch.tensor([lengths[i]]))
        assert int(n) == int(frames[i]), seed
        torch.testing.assert_close(feats[i, :n], alone[0], atol=2e-4, rtol=2e-4, msg=f"seed {seed}")
        assert (feats[i, n:] == 0).all(), seed


@pytest.mark.parametrize("seed", range(8))
def test_model_output_of_a_batch_equals_each_utterance_alone(seed, single_thread):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    cfg = ModelConfig(rnn_type=["lstm", "gru", "rnn"][seed % 3], hidden_size=12, num_layers=2, dropout=0.0,
                      subsample=1 + seed % 3, layer_norm=bool(seed % 2))
    model = BiRNNCTC(cfg, 8, 11).eval()
    lengths = torch.randint(1, 30, (4,), generator=g)
    x = torch.randn(4, int(lengths.max()), 8, generator=g)
    x = x * (torch.arange(x.shape[1])[None, :, None] < lengths[:, None, None])
    out, out_lengths = model(x, lengths)
    for i in range(4):
        alone, n = model(x[i:i + 1, :lengths[i]], lengths[i:i + 1])
        assert int(n) == int(out_lengths[i]) == -(-int(lengths[i]) // cfg.subsample), seed
        torch.testing.assert_close(out[i, :n], alone[0], atol=1e-5, rtol=1e-5, msg=f"seed {seed}")


@pytest.mark.parametrize("seed", range(30))
def test_greedy_decoding_inverts_any_ctc_path(seed):
    """A label sequence spread over frames as CTC allows (each token repeated, blanks
    anywhere and necessarily between equal neighbours) decodes back to the labels, and
    each token's time is the frame where it starts."""
    rng = random.Random(seed)
    vocab = Vocabulary()
    labels = [rng.randint(1, len(vocab.tokens)) for _ in range(rng.randint(0, 12))]
    path, starts = [0] * rng.randint(0, 3), []
    for k, token in enumerate(labels):
        if (k and labels[k - 1] == token) or rng.random() < 0.3:
            path += [0] * rng.randint(1, 3)
        starts.append(len(path))
        path += [token] * rng.randint(1, 4)
    path += [0] * rng.randint(0, 3)
    frames = max(len(path), 1)
    log_probs = torch.full((1, frames + 5, len(vocab.labels)), -9.0)
    log_probs[0, torch.arange(len(path)), torch.tensor(path, dtype=torch.long)] = -0.1
    log_probs[0, len(path):, 1] = -0.1  # frames past the length must not count
    (hyp,), = GreedyDecoder(vocab).decode(log_probs, torch.tensor([len(path)]))
    assert hyp.tokens == labels and hyp.timesteps == starts, seed
    assert hyp.text == " ".join(vocab.decode(labels).split()), seed  # single spaces between words


@pytest.mark.parametrize("seed", range(10))
def test_manifests_round_trip(seed, tmp_path):
    """Texts with any characters, durations, offsets and extra keys come back unchanged,
    both as a list and as the table training uses."""
    rng = random.Random(seed)
    (tmp_path / "a b").mkdir()
    sf.write(tmp_path / "a b" / "x é.wav", np.zeros(800, dtype=np.float32), 8000)
    alphabet = "abc xyz ÉéßЖ中'\"\\\t/{}[],:-0123456789"
    utts = []
    for i in range(rng.randint(1, 20)):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        extra = {"speaker": rng.choice(["s1", "s 2", "ö"]), "score": rng.random()} if rng.random() < 0.5 else {}
        utts.append(Utterance(f"u{i}-{rng.randint(0, 10**6)}", str(tmp_path / "a b" / "x é.wav"),
                              round(rng.uniform(0.01, 30), 4), text, extra,
                              round(rng.uniform(0, 5), 4) if rng.random() < 0.3 else None))
    path = tmp_path / "m.jsonl"
    write_manifest(path, utts)
    assert all(json.loads(line)["audio_filepath"] == "a b/x é.wav" for line in path.open())  # stored relative
    back = read_manifest(path)
    assert back == utts and [u.extra for u in back] == [u.extra for u in utts], seed
    table = read_manifest_table(str(path))
    assert [(u.id, u.audio_filepath, u.duration, u.text, u.offset) for u in table] == \
        [(u.id, u.audio_filepath, u.duration, u.text, u.offset) for u in utts], seed
