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


def build_optimizer(params, cfg: OptimConfig, total_steps: int):
    """``(optimizer, scheduler)``; the scheduler is stepped once per optimizer step."""
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)
