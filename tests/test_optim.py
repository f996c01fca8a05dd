import math

import pytest
import torch

from asr.optim import OptimConfig, build_optimizer


def _lrs(cfg: OptimConfig, total_steps: int, steps: int) -> list[float]:
    """Learning rate used at each optimizer step 0..steps-1."""
    opt, sched = build_optimizer([torch.nn.Parameter(torch.zeros(2))], cfg, total_steps)
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_adamw_gets_the_configured_hyperparameters():
    cfg = OptimConfig(lr=3e-3, betas=[0.8, 0.9], weight_decay=0.1, warmup_steps=0)
    opt, _ = build_optimizer([torch.nn.Parameter(torch.zeros(1))], cfg, 10)
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-3, (0.8, 0.9), 0.1)


def test_linear_warmup_then_cosine_decay_to_the_floor():
    cfg = OptimConfig(lr=1.0, warmup_steps=4, min_lr_ratio=0.1, schedule="cosine")
    lrs = _lrs(cfg, total_steps=14, steps=20)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    mid = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))  # halfway through the decay
    assert lrs[9] == pytest.approx(mid)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[14:] == pytest.approx([0.1] * 6)  # stays at the floor after total_steps


def test_constant_schedule_and_no_warmup():
    assert _lrs(OptimConfig(lr=0.5, warmup_steps=2, schedule="constant"), 10, 6) == pytest.approx(
        [0.25, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert _lrs(OptimConfig(lr=0.5, warmup_steps=0, min_lr_ratio=0.0), 4, 5) == pytest.approx(
        [0.5, 0.5 * 0.5 * (1 + math.cos(math.pi / 4)), 0.25, 0.5 * 0.5 * (1 + math.cos(3 * math.pi / 4)), 0.0])


def test_training_run_shorter_than_the_warmup_does_not_break():
    lrs = _lrs(OptimConfig(lr=1.0, warmup_steps=10), total_steps=3, steps=12)
    assert all(math.isfinite(x) and 0 < x <= 1.0 for x in lrs)


def test_scheduler_state_resumes():
    cfg = OptimConfig(lr=1.0, warmup_steps=3)
    param = torch.nn.Parameter(torch.zeros(2))
    opt, sched = build_optimizer([param], cfg, 20)
    for _ in range(7):
        opt.step()
        sched.step()
    opt2, sched2 = build_optimizer([param], cfg, 20)
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(sched.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    opt.step(), sched.step(), opt2.step(), sched2.step()
    assert sched2.get_last_lr() == pytest.approx(sched.get_last_lr())


@pytest.mark.parametrize("kwargs", [{"schedule": "linear"}, {"lr": 0}, {"warmup_steps": -1}, {"min_lr_ratio": 1.5},
                                    {"betas": [0.9]}, {"betas": [0.9, 1.0]}, {"grad_clip": 0}])
def test_bad_optim_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        OptimConfig(**kwargs)
