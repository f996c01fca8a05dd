"""Training: read manifests, fit a Recognizer with CTC, validate each epoch, checkpoint.

``train(cfg)`` is the library entry point; ``asr-train`` (``cli``) wraps it in Hydra::

    asr-train experiment=demo optim.lr=2e-3 epochs=30
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.augment import AugmentConfig, SpecAugment, WaveAugment
from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.data import AudioDataset, DataConfig, DurationBatchSampler, collate, drop_unalignable, read_manifest
from asr.evaluate import evaluate
from asr.features import FeatureConfig, encoder_steps
from asr.model import ModelConfig
from asr.plots import plot_curves
from asr.optim import OptimConfig, build_optimizer
from asr.recognizer import Recognizer
from asr.text import Vocabulary
from asr.utils import UserError, autocast_dtype, resolve_device

log = logging.getLogger("asr.train")


@dataclass
class TrainConfig:
    """Everything a run needs; ``exp_dir`` receives checkpoints, metrics and the config."""

    experiment: str = "default"
    exp_dir: str = "exp/${experiment}"
    seed: int = 1234
    epochs: int = 20
    max_steps: int = 0  # stop after this many optimizer steps (0: no limit)
    device: str = "auto"
    precision: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16
    resume: bool = False
    log_every: int = 25
    progress: bool = True
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    state = {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
             "numpy_pos": int(np.random.get_state()[2]), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate((3, tuple(state["python"]), state["python_pos"]))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype(np.uint32), state["numpy_pos"], 0, 0.0))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class MetricsLog:
    """Appends JSON lines to ``metrics.jsonl`` and scalars to TensorBoard."""

    def __init__(self, exp_dir: Path):
        self.file = open(exp_dir / "metrics.jsonl", "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(exp_dir / "tensorboard"))
        except ImportError:  # tensorboard is optional at run time
            self.tb = None

    def write(self, record: dict, step: int) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb is not None:
            for k, v in record.items():
                if k not in ("step", "epoch", "kind") and isinstance(v, (int, float)):
                    self.tb.add_scalar(f"{record['kind']}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def train(cfg: TrainConfig) -> dict:
    """Train a model as ``cfg`` says; returns the best dev metrics.

    Writes to ``cfg.exp_dir``: ``config.yaml``, ``metrics.jsonl``, ``tensorboard/``,
    ``last.pt`` (every epoch, with optimizer, scheduler and RNG state) and ``best.pt``
    (lowest dev WER).
    """
    exp_dir = Path(cfg.exp_dir)
    exp_dir.mkdir(parents=True, exist_ok=True)
    _write_config(cfg, exp_dir / "config.yaml")
    device = resolve_device(cfg.device)
    amp_dtype = autocast_dtype(device, cfg.precision)
    seed_everything(cfg.seed)

    # Data: manifests -> dataset -> duration-bucketed batches.
    vocab = Vocabulary(cfg.data.chars)
    steps = lambda d: encoder_steps(d, cfg.features, cfg.model.subsample)  # noqa: E731
    train_utts = drop_unalignable(read_manifest(cfg.data.train_manifest), vocab, steps, "train")
    dev_utts = read_manifest(cfg.data.dev_manifest)
    if not train_utts:
        raise UserError(f"{cfg.data.train_manifest}: no utterance can be trained on (all transcripts empty "
                        "or too long for their audio); check the manifest's text and duration fields")
    sampler = DurationBatchSampler([u.duration for u in train_utts], cfg.data.max_batch_seconds,
                                   cfg.data.max_batch_size, shuffle=True, seed=cfg.seed, item_seeds=True)
    wave_augment = WaveAugment(cfg.augment, cfg.features.sample_rate) if cfg.augment.wave_enabled else None
    train_set = AudioDataset(train_utts, vocab, cfg.features.sample_rate, transform=wave_augment)
    loader = DataLoader(train_set, batch_sampler=sampler,
                        collate_fn=collate, num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
                        persistent_workers=cfg.data.num_workers > 0)
    log.info("train: %d utterances (%.2f h), %d batches/epoch, padding %.1f%%; dev: %d utterances",
             len(train_utts), sum(u.duration for u in train_utts) / 3600, len(sampler),
             100 * sampler.padding_fraction(), len(dev_utts))

    # Model, optimizer, schedule.
    recognizer = Recognizer(cfg.features, cfg.model, vocab).to(device)
    spec_augment = SpecAugment(cfg.augment).to(device) if cfg.augment.spec_enabled else torch.nn.Identity()
    if cfg.features.normalize == "global":
        stats = DataLoader(AudioDataset(train_utts[:500], vocab, cfg.features.sample_rate), batch_size=16,
                           collate_fn=collate)
        recognizer.features.fit_global_stats((b.waves, b.wave_lengths) for b in stats)
    total_steps = cfg.epochs * len(sampler)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer, scheduler = build_optimizer(recognizer.model.parameters(), cfg.optim, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ctc = torch.nn.CTCLoss(blank=vocab.blank, reduction="mean", zero_infinity=True)
    n_params = sum(p.numel() for p in recognizer.parameters())
    log.info("model: %s, %.2fM parameters, device %s, precision %s", cfg.model.rnn_type, n_params / 1e6,
             device, amp_dtype or "fp32")

    progress = {"epoch": 0, "step": 0, "best_wer": math.inf}
    last, best = exp_dir / "last.pt", exp_dir / "best.pt"
    if cfg.resume and last.exists():
        state = load_checkpoint(last)
        recognizer.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        progress = state["progress"]
        log.info("resumed from %s at epoch %d, step %d", last, progress["epoch"], progress["step"])

    def checkpoint(path: Path) -> None:
        save_checkpoint(path, {**recognizer.describe(), "optimizer": optimizer.state_dict(),
                               "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                               "rng": rng_state(), "progress": dict(progress), "config": dataclasses.asdict(cfg)})

    metrics = MetricsLog(exp_dir)
    result: dict = {}
    try:
        for epoch in range(progress["epoch"], cfg.epochs):
            if cfg.max_steps and progress["step"] >= cfg.max_steps:
                break
            sampler.set_epoch(epoch)
            recognizer.train()
            spec_augment.train()
            start, loss_sum, n_batches = time.time(), 0.0, 0
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not cfg.progress,
                       leave=False, dynamic_ncols=True, file=sys.stderr)
            for batch in bar:
                waves, wave_lengths = batch.waves.to(device, non_blocking=True), batch.wave_lengths.to(device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    feats, frames = recognizer.features(waves, wave_lengths)  # (batch, frames, n_mels)
                    log_probs, lengths = recognizer.model(spec_augment(feats), frames)  # (batch, steps, vocab)
                loss = ctc(log_probs.float().transpose(0, 1), batch.targets.to(device), lengths,
                           batch.target_lengths.to(device))
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(recognizer.model.parameters(), cfg.optim.grad_clip)
                if not (torch.isfinite(loss) and torch.isfinite(grad_norm)):
                    log.warning("step %d: non-finite loss or gradient; step skipped", progress["step"])
                    scaler.update()
                    continue
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                progress["step"] += 1
                loss_sum, n_batches = loss_sum + loss.item(), n_batches + 1
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if progress["step"] % cfg.log_every == 0:
                    metrics.write({"kind": "train", "epoch": epoch, "step": progress["step"], "loss": loss.item(),
                                   "grad_norm": grad_norm.item(), "lr": scheduler.get_last_lr()[0]},
                                  progress["step"])
                if cfg.max_steps and progress["step"] >= cfg.max_steps:
                    break
            bar.close()

            dev = evaluate(recognizer, dev_utts, device=device, precision=cfg.precision,
                           max_batch_seconds=cfg.data.max_batch_seconds)
            progress["epoch"] = epoch + 1
            result = {"kind": "epoch", "epoch": epoch + 1, "step": progress["step"],
                      "train_loss": loss_sum / max(n_batches, 1), "dev_loss": dev.loss, "dev_wer": dev.rates.wer,
                      "dev_cer": dev.rates.cer, "seconds": time.time() - start}
            metrics.write(result, progress["step"])
            improved = dev.rates.wer < progress["best_wer"]
            if improved:
                progress["best_wer"] = dev.rates.wer
            log.info("epoch %d: train loss %.3f, dev loss %.3f, dev %s, %.0f s%s", epoch + 1,
                     result["train_loss"], dev.loss, dev.rates.summary(), result["seconds"],
                     " (best)" if improved else "")
            checkpoint(last)
            if improved:
                checkpoint(best)
            plot_curves(exp_dir / "metrics.jsonl", exp_dir / "curves.png")
    finally:
        metrics.close()
    return {"best_dev_wer": progress["best_wer"], **result}


def _write_config(cfg: TrainConfig, path: Path) -> None:
    import yaml

    from asr.utils import atomic_open

    with atomic_open(path) as f:
        yaml.safe_dump(dataclasses.asdict(cfg), f, sort_keys=False)


def cli() -> None:
    """``asr-train``: Hydra composes ``conf/`` with the command line, then calls :func:`train`."""
    from asr.config import hydra_main

    hydra_main(train, TrainConfig)


if __name__ == "__main__":
    cli()
