"""asr.runtime: RNG state saved and restored, the metrics log cut back on resume."""

import json
import random

import numpy as np
import torch

from asr import runtime


def test_rng_state_round_trip_replays_every_generator():
    runtime.seed_everything(5)
    state = runtime.rng_state()
    first = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)  # move on, then go back
    runtime.set_rng_state(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[:2] == again[:2] and torch.equal(first[2], again[2])


def test_resume_on_fewer_gpus_restores_the_ones_there(monkeypatch):
    """A run saved on a node with 4 GPUs resumed on one: the one GPU's RNG state is
    restored, the others are ignored (torch.cuda.set_rng_state_all raised IndexError)."""
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, index: restored.append((int(state[0]), index)))
    state = runtime.rng_state()
    state["cuda"] = [torch.full((8,), i, dtype=torch.uint8) for i in range(4)]
    runtime.set_rng_state(state)
    assert restored == [(0, 0)]


def test_metrics_log_on_resume_drops_what_a_killed_run_wrote_after_its_checkpoint(tmp_path):
    lines = [json.dumps({"kind": "train", "step": s, "loss": 1.0}) for s in (10, 20, 30)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"kind": "train", "st')  # torn last line
    log = runtime.MetricsLog(tmp_path, resume_step=20)
    log.write({"kind": "train", "step": 21, "loss": 0.5}, 21)
    log.close()
    steps = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [10, 20, 21]
