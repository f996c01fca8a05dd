"""Distributed training: 2 gloo ranks under torchrun match 1 rank with twice the batch;
ranks that disagree are refused with one clear line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from asr import distributed
from asr.checkpoint import load_checkpoint
from asr.data import DurationBatchSampler, Utterance, write_manifest
from asr.utils import flatten_dict
from asr.train import TrainConfig, train

REPO = Path(__file__).resolve().parent.parent


def write_corpus(root: Path, n: int, seed: int) -> Path:
    """``n`` noisy tones of 0.5-1.5 s with short transcripts; returns the manifest."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        samples = int(rng.uniform(0.5, 1.5) * 16000)
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * np.arange(samples) / 16000)
        wave += 0.05 * rng.standard_normal(samples)
        sf.write(root / "wav" / f"u{i}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
        utts.append(Utterance(f"u{i}", str(root / "wav" / f"u{i}.wav"), samples / 16000,
                              " ".join(rng.choice(["ab", "cd", "ef"], int(rng.integers(1, 3))))))
    write_manifest(root / "corpus.jsonl", utts)
    return root / "corpus.jsonl"


def overrides(train_m: Path, dev_m: Path, exp_dir: Path, batch: int) -> list[str]:
    # Shortest-first batches (shuffle=false): rank r of 2 takes batches r, r+2, ... of size B,
    # so each step's global batch is the 2B utterances one rank with batch 2B sees. No dropout;
    # packed sequences and per-utterance features make every utterance's output independent
    # of how it is padded.
    return [f"exp_dir={exp_dir}", f"data.train_manifest={train_m}", f"data.dev_manifest={dev_m}",
            f"data.max_batch_size={batch}", "data.max_batch_seconds=1000", "data.num_workers=0", "shuffle=false",
            "model.hidden_size=24", "model.num_layers=2", "model.dropout=0", "model.pack=always",
            "features.n_mels=16", "optim.warmup_steps=1", "optim.lr=3e-3", "epochs=1", "max_steps=3",
            "progress=false", "log_every=1", "checkpoint_every=0"]


def run(cmd: list[str]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]


def train_losses(exp_dir: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (exp_dir / "metrics.jsonl").open()) if r["kind"] == "train"]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_gloo_ranks_of_batch_b_match_one_rank_of_batch_2b(tmp_path):
    train_m = write_corpus(tmp_path / "train", 16, seed=3)
    dev_m = write_corpus(tmp_path / "dev", 5, seed=4)
    run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         "-m", "asr.train", *overrides(train_m, dev_m, tmp_path / "two", batch=2)])
    # One rank, batch 2B: the config asr-train composed for the two ranks, in this process.
    cfg = TrainConfig.from_dict(yaml.safe_load((tmp_path / "two" / "config.yaml").read_text()))
    cfg.exp_dir, cfg.data.max_batch_size = str(tmp_path / "one"), 4
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)

    two, one = train_losses(tmp_path / "two"), train_losses(tmp_path / "one")
    assert len(two) == len(one) == 3
    assert two == pytest.approx(one, rel=1e-5)
    assert len(set(one)) == 3  # the steps did change the model
    a, b = load_checkpoint(tmp_path / "two" / "last.pt"), load_checkpoint(tmp_path / "one" / "last.pt")
    for k, v in a["state_dict"].items():
        torch.testing.assert_close(v, b["state_dict"][k], rtol=1e-3, atol=1e-4)
    assert len(a["rng_ranks"]) == 2 and a["progress"]["world_size"] == 2
    epoch_two, epoch_one = (json.loads(line) for d in ("two", "one")
                            for line in (tmp_path / d / "metrics.jsonl").open() if '"epoch", "epoch"' in line)
    # dev metrics reduced over both ranks' shards: the whole dev set, as on one rank
    assert epoch_two["dev_loss"] == pytest.approx(epoch_one["dev_loss"], rel=1e-3)
    assert epoch_two["dev_wer"] == epoch_one["dev_wer"]


def test_sampler_shards_are_disjoint_and_equal_in_number():
    durations = np.random.default_rng(0).uniform(0.5, 5.0, 101).tolist()
    shards = []
    for rank in range(3):
        s = DurationBatchSampler(durations, 12.0, shuffle=True, seed=7, num_replicas=3, rank=rank)
        s.set_epoch(2)
        shards.append([i for batch in s for i in batch])
        assert len(list(s)) == len(s)
    assert len({len(list(DurationBatchSampler(durations, 12.0, num_replicas=3, rank=r))) for r in range(3)}) == 1
    flat = [i for shard in shards for i in shard]
    assert len(flat) == len(set(flat))  # no utterance on two ranks in one epoch


def test_agreement_check_names_the_differing_key(monkeypatch):
    config = {"seed": 1, "optim": {"lr": 0.001}, "data": {"chars": "ab"}}
    other = {"seed": 1, "optim": {"lr": 0.002}, "data": {"chars": "ab"}}
    mine = {"config": flatten_dict(config), "vocab": "ab", "data": {"train": "x"}}
    theirs = {"config": flatten_dict(other), "vocab": "ab", "data": {"train": "x"}}
    monkeypatch.setattr(distributed, "all_gather_objects", lambda obj: [obj, theirs])
    with pytest.raises(distributed.DistributedError,
                       match=r"ranks disagree on config: optim.lr is 0.002 on rank 1 but 0.001 on rank 0; launch"):
        distributed.check_agreement(config, "ab", {"train": "x"})
    monkeypatch.setattr(distributed, "all_gather_objects", lambda obj: [obj, {**mine, "vocab": "abc"}])
    with pytest.raises(distributed.DistributedError, match=r"rank 1 has vocabulary 'abc' but rank 0 has 'ab'"):
        distributed.check_agreement(config, "ab", {"train": "x"})
    monkeypatch.setattr(distributed, "all_gather_objects", lambda obj: [obj, {**mine, "data": {"train": "y"}}])
    with pytest.raises(distributed.DistributedError, match=r"ranks disagree on data: train is 'y' on rank 1"):
        distributed.check_agreement(config, "ab", {"train": "x"})
    monkeypatch.setattr(distributed, "all_gather_objects", lambda obj: [obj, obj])
    distributed.check_agreement(config, "ab", {"train": "x"})  # agreement: no error


def test_single_process_helpers_need_no_process_group(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    ctx, device = distributed.init("cpu")
    assert ctx == distributed.Context() and ctx.is_main and not ctx.enabled and device.type == "cpu"
    x = torch.tensor([1.0, 3.0])
    assert torch.equal(distributed.all_reduce_mean(x), x)
    assert distributed.all_gather_objects({"a": 1}) == [{"a": 1}]


@pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                    reason="torch.distributed with gloo is not available")
def test_two_ranks_resumed_at_an_epoch_end_continue_each_with_its_own_random_state(tmp_path):
    """Dropout, SpecAugment and noise draw differently on each rank: a 2-rank run stopped
    after epoch 1 and resumed ends with the weights of an uninterrupted 2-rank run only if
    each rank gets its own RNG state back (rng_ranks), not rank 0's."""
    train_m = write_corpus(tmp_path / "train", 16, seed=5)
    dev_m = write_corpus(tmp_path / "dev", 4, seed=6)

    def two_ranks(exp_dir: Path, *extra: str) -> None:
        args = overrides(train_m, dev_m, exp_dir, batch=2)
        args = [a for a in args if not a.startswith(("model.dropout=", "epochs=", "max_steps="))]
        run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m",
             "asr.train", *args, "model.dropout=0.3", "augment.time_masks=1", "augment.time_mask_width=5",
             "augment.noise_prob=0.5", "optim.schedule=constant", "optim.warmup_steps=0", *extra])

    two_ranks(tmp_path / "a", "epochs=2")
    two_ranks(tmp_path / "b", "epochs=1")
    saved = load_checkpoint(tmp_path / "b" / "last.pt")
    assert len(saved["rng_ranks"]) == 2 and not torch.equal(saved["rng_ranks"][0]["torch"], saved["rng_ranks"][1]["torch"])
    two_ranks(tmp_path / "b", "epochs=2", "resume=true")
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("a", "b"))
    assert a["progress"]["epoch"] == b["progress"]["epoch"] == 2 and a["progress"]["step"] == b["progress"]["step"]
    for key, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][key]), key
