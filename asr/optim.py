"""AdamW with linear warm-up, then cosine (or no) decay."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

SCHEDULES = ("cosine", "constant")


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.98])
    weight_decay: float = 0.01
    warmup_steps: int = 200
    schedule: str = "cosine"
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"optim.schedule={self.schedule!r}; expected one of {SCHEDULES}")
        if not self.lr > 0 or self.warmup_steps < 0 or self.weight_decay < 0 or not self.grad_clip > 0:
            raise ValueError("optim: need lr > 0, warmup_steps >= 0, weight_decay >= 0 and grad_clip > 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"optim.min_lr_ratio={self.min_lr_ratio}; expected a fraction in [0, 1]")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optim.betas={list(self.betas)}; expected two values in [0, 1), e.g. [0.9, 0.98]")


def build_optimizer(params, cfg: OptimConfig, total_steps: int):
    """``(optimizer, scheduler)``; the scheduler is stepped once per optimizer step."""
    # fused: one kernel for all parameters (CPU and CUDA), a few % of a CPU training step.
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay, fused=True)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
