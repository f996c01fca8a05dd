"""Training: read manifests, fit a Recognizer with CTC, validate each epoch, checkpoint.

``train(cfg)`` is the library entry point; ``asr-train`` (``cli``) wraps it in Hydra::

    asr-train experiment=demo optim.lr=2e-3 epochs=30
    torchrun --standalone --nproc-per-node 4 -m asr.train experiment=demo   # 4 GPUs (DDP)

Fault tolerance: ``last.pt`` holds everything needed to continue exactly where the run
stopped (model, optimizer, scheduler, grad scaler, every rank's RNG states, epoch and
batch position inside the epoch); it is rewritten every ``checkpoint_every`` steps (with a
copy in ``checkpoints/step-N.pt``, the newest ``keep_last_n`` kept), at each epoch end and
on SIGTERM/SIGINT. ``resume=true`` continues from the newest good one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr import distributed, rundir
from asr.augment import AugmentConfig, SpecAugment, WaveAugment
from asr.checkpoint import (epoch_path, link_or_copy, list_checkpoints, load_latest, periodic_path,
                            prune_checkpoints, save_checkpoint)
from asr.data import (AudioDataset, Batch, DataConfig, DurationBatchSampler, FeatureCollate, collate, drop_unalignable,
                      read_manifest, read_manifest_table)
from asr.evaluation import evaluate
from asr.features import FeatureConfig
from asr.metrics import ErrorRates, error_rates
from asr.models import BiRNNConfig, config_classes, model_config
from asr.optim import OptimConfig, build_optimizer
from asr.plots import plot_curves
from asr.recognizer import Recognizer, output_steps
from asr.runtime import MetricsLog, StopSignals, ignore_sigint, rng_state, seed_everything, set_rng_state
from asr.subword import SUBWORD_TYPES, train_subwords, vocabulary_from_state
from asr.text import Vocabulary
from asr.utils import UserError, autocast_dtype, flatten_dict

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
    precision: str = "auto"  # auto (CUDA: bf16 with fp32 RNNs, or fp16 + grad scaler before Ampere; CPU: fp32), fp32, bf16, fp16
    resume: bool = False  # continue the run in exp_dir from its newest good checkpoint
    overwrite: bool = False  # exp_dir holds another run: move it into exp_dir/replaced-<time>/ and start afresh
    log_every: int = 25
    progress: bool = True
    checkpoint_every: int = 1000  # also write last.pt and checkpoints/step-N.pt every N steps (0: epoch ends only)
    keep_last_n: int = 3  # periodic (and per-epoch weight) checkpoints kept (0: all)
    max_bad_steps: int = 20  # stop when this many steps in a row have a non-finite loss or gradient
    average_last: int = 0  # at the end, average the weights of the last N epochs into averaged.pt (0: off)
    patience: int = 0  # stop early after N epochs without a better dev WER (0: never)
    shuffle: bool = True  # shuffle batches each epoch (false: shortest first, for exact comparisons)
    deterministic: bool = False  # torch.use_deterministic_algorithms: bit-exact reruns (slower on GPU)
    threads: int = 0  # CPU threads for torch (0: torch's default); 1 is fastest on a busy shared machine
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: Any = field(default_factory=BiRNNConfig)  # any model's config (asr.models); model=NAME picks one
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """Rebuild a config from ``dataclasses.asdict`` output, e.g. a run's ``config.yaml``."""
        nested = {f.name: f.default_factory for f in dataclasses.fields(cls) if callable(f.default_factory)}
        nested["model"] = lambda **v: model_config(v)  # the config class its name chooses
        return cls(**{k: nested[k](**v) if k in nested else v for k, v in d.items()})

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs={self.epochs}; expected a positive number of epochs (max_steps=N stops earlier)")
        try:
            Vocabulary(self.data.chars, self.data.numbers)
        except ValueError as e:
            raise ValueError(f"data: {e}") from None
        if self.data.subwords < 0:
            raise ValueError(f"data.subwords={self.data.subwords}; expected 0 (characters) or the number of "
                             "subword units to learn (e.g. 256)")
        if self.data.subword_type not in SUBWORD_TYPES:
            raise ValueError(f"data.subword_type={self.data.subword_type!r}; expected one of {', '.join(SUBWORD_TYPES)}")
        if self.data.subwords and " " not in self.data.chars:
            raise ValueError("data.subwords needs a space in data.chars: subword units are learnt within words")
        if self.resume and self.overwrite:
            raise ValueError("resume=true and overwrite=true contradict each other; choose one")
        for key in ("checkpoint_every", "keep_last_n", "max_bad_steps", "average_last", "patience", "max_steps",
                    "threads"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key}={getattr(self, key)}; expected 0 or a positive number")


# Config groups whose presets have dataclasses of their own: model=ds2 gets DS2Config's keys.
CONFIG_VARIANTS = {"model": config_classes()}


class TrainingInterrupted(Exception):
    """SIGTERM or SIGINT arrived; ``last.pt`` was written. ``asr-train`` exits ``128 + signum``."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped by {signal.Signals(signum).name} at step {step}; "
                         "last.pt holds the state, continue with resume=true")
        self.signum = signum


def train(cfg: TrainConfig) -> dict:
    """Train a model as ``cfg`` says; returns the best dev metrics.

    Writes to ``cfg.exp_dir`` (rank 0 only): ``config.yaml``, ``metrics.jsonl``,
    ``tensorboard/``, ``last.pt`` (full training state), ``best.pt`` (lowest dev WER),
    ``checkpoints/`` (periodic states and per-epoch weights), ``curves.png`` and, with
    ``average_last``, ``averaged.pt``. Under ``torchrun`` every rank trains on its shard of
    the batches with DistributedDataParallel.
    """
    ctx, device = distributed.init(cfg.device)
    saved = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark, torch.get_num_threads()
    try:
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        with _own_exp_dir(cfg, ctx), StopSignals() as stop:
            return _train(cfg, ctx, device, stop)
    finally:  # leave the process as it was (train() may be called from a notebook or a test)
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        torch.set_num_threads(saved[2])
        distributed.shutdown()


@contextlib.contextmanager
def _own_exp_dir(cfg: TrainConfig, ctx: distributed.Context):
    """Rank 0 claims ``exp_dir`` (:func:`asr.rundir.claim`) and logs into its ``train.log``
    while the run lasts; other ranks log warnings only."""
    if not ctx.is_main:
        _quiet_logging()
        yield
        return
    with rundir.claim(cfg.exp_dir, resume=cfg.resume, overwrite=cfg.overwrite) as claimed:
        handler = logging.FileHandler(claimed.path / "train.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        logging.getLogger().addHandler(handler)
        asr_log, level = logging.getLogger("asr"), logging.getLogger("asr").level
        if asr_log.getEffectiveLevel() > logging.INFO:  # called as a library: train.log still gets the INFO lines
            asr_log.setLevel(logging.INFO)
        try:
            if claimed.replaced:
                log.info("overwrite=true: the earlier run in %s was moved into %s", claimed.path, claimed.replaced)
            log.info("command: %s", " ".join(sys.argv))
            yield
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
            asr_log.setLevel(level)


# Keys a resumed run cannot change: the checkpoint's weights, optimizer and RNG state fix them.
FROZEN_ON_RESUME = ("seed", "model", "features", "optim", "data.chars", "data.numbers", "data.subwords",
                    "data.subword_type")


def check_resumable(cfg: TrainConfig, saved: dict, path: Path) -> None:
    """Refuse to resume from ``path`` (whose training config is ``saved``) when a key of
    :data:`FROZEN_ON_RESUME` differs, naming every differing key."""
    now, before = flatten_dict(dataclasses.asdict(cfg)), flatten_dict(saved)
    differ = [k for k in now if k in before and now[k] != before[k]
              and any(k == f or k.startswith(f + ".") for f in FROZEN_ON_RESUME)]
    if differ:
        shown = ", ".join(f"{k}={before[k]!r} there, {now[k]!r} now" for k in differ[:6])
        raise UserError(f"resume=true: {path} does not fit this configuration ({shown}); these keys cannot change "
                        "when resuming: drop those overrides, or start a new run (overwrite=true or another exp_dir)")


@dataclass
class LoopState:
    """Where the run stands; saved in every checkpoint as ``progress`` (these keys).

    ``batch``: batches consumed in ``epoch`` (resuming inside it); ``step``: optimizer
    steps; ``since_best``: epochs without a better dev WER; ``bad_steps``/``bad_in_row``:
    skipped steps (non-finite loss or gradient); ``loss_sum``/``n_batches``: the epoch's
    running loss; ``world_size``: the ranks it was saved with."""

    epoch: int = 0
    batch: int = 0
    step: int = 0
    best_wer: float = math.inf
    since_best: int = 0
    bad_steps: int = 0
    bad_in_row: int = 0
    loss_sum: float = 0.0
    n_batches: int = 0
    world_size: int = 1

    def state_dict(self) -> dict:
        return dataclasses.asdict(self)

    def load_state_dict(self, d: dict) -> None:
        for key, value in d.items():
            if hasattr(self, key):
                setattr(self, key, value)


@dataclass
class Data:
    """The training data of this rank and the dev set (every rank holds all of it)."""

    vocab: Vocabulary
    train: Sequence  # UtteranceTable
    dev: list
    sampler: DurationBatchSampler
    loader: DataLoader


@dataclass
class Parts:
    """What a training step needs: ``model`` is ``recognizer.model`` or its DDP wrapper."""

    recognizer: Recognizer
    model: torch.nn.Module
    spec_augment: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    ctc: torch.nn.CTCLoss
    amp_dtype: torch.dtype | None


def _train(cfg: TrainConfig, ctx: distributed.Context, device: torch.device, stop: StopSignals) -> dict:
    """The run: data, model, resume, then epochs of training, validation and checkpoints."""
    exp_dir = Path(cfg.exp_dir)
    if cfg.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    seed_everything(cfg.seed)
    data = build_data(cfg, ctx, device)
    parts = build_parts(cfg, ctx, device, data)
    loop = LoopState(world_size=ctx.world_size)
    resumed = resume(cfg, ctx, parts, loop)
    if features_in_workers(device, cfg.data.num_workers):
        # The recognizer's own feature module, its global statistics fitted or resumed by now.
        data.loader.collate_fn = FeatureCollate(parts.recognizer.features)
    if ctx.is_main:  # what actually runs (a resumed run's frozen keys were just checked)
        _write_config(cfg, exp_dir / "config.yaml")
    metrics = MetricsLog(exp_dir, loop.step if resumed else None) if ctx.is_main else None
    # The loader's workers are forked at the first epoch. Objects made so far move to the
    # garbage collector's permanent generation, so collections in the workers do not write
    # to their pages (which would copy them into every worker).
    gc.freeze()
    result: dict = {}
    try:
        for epoch in range(loop.epoch, cfg.epochs):
            if (cfg.max_steps and loop.step >= cfg.max_steps) or _early_stop(cfg, loop):
                break
            start = time.time()
            train_one_epoch(cfg, ctx, device, parts, data, loop, epoch, stop, metrics)
            result = end_epoch(cfg, ctx, device, parts, data, loop, epoch, metrics, time.time() - start)
        if cfg.average_last and ctx.is_main and list_checkpoints(exp_dir, "epoch"):
            result["averaged_dev_wer"] = _average(cfg, exp_dir, data.dev, device, metrics)
        distributed.barrier()
    finally:
        gc.unfreeze()
        if metrics:
            metrics.close()
    return {"best_dev_wer": loop.best_wer, **result}


def build_data(cfg: TrainConfig, ctx: distributed.Context, device: torch.device) -> Data:
    """Manifests -> dataset -> duration-bucketed batches, this rank's share."""
    vocab = Vocabulary(cfg.data.chars, cfg.data.numbers)
    train_table = read_manifest_table(cfg.data.train_manifest)
    if cfg.data.subwords:
        vocab = _subword_vocabulary(cfg, [train_table.texts[i] for i in range(len(train_table))])
    # Speed perturbation shortens audio by up to the fastest speed: keep labels alignable then too.
    fastest = max(cfg.augment.speeds or [1.0])
    steps = lambda d: output_steps(d / fastest, cfg.features, cfg.model)  # noqa: E731
    train_utts = drop_unalignable(train_table, vocab, steps, "train")
    dev_utts = read_manifest(cfg.data.dev_manifest)
    if not train_utts:
        raise UserError(f"{cfg.data.train_manifest}: no utterance can be trained on (all transcripts empty "
                        "or too long for their audio); check the manifest's text and duration fields")
    if ctx.enabled:
        distributed.check_agreement(_rank_independent(cfg), vocab.tokens, {
            "train": distributed.fingerprint([(u.id, u.duration, u.text) for u in train_utts]),
            "dev": distributed.fingerprint([(u.id, u.duration, u.text) for u in dev_utts])})
    sampler = DurationBatchSampler(train_utts.durations, cfg.data.max_batch_seconds,
                                   cfg.data.max_batch_size, shuffle=cfg.shuffle, seed=cfg.seed,
                                   num_replicas=ctx.world_size, rank=ctx.rank, item_seeds=True)
    if len(sampler) == 0:
        raise UserError(f"{cfg.data.train_manifest}: {len(train_utts)} utterances make fewer batches than the "
                        f"{ctx.world_size} ranks; use fewer ranks or a smaller data.max_batch_seconds")
    wave_augment = WaveAugment(cfg.augment, cfg.features.sample_rate) if cfg.augment.wave_enabled else None
    train_set = AudioDataset(train_utts, vocab, cfg.features.sample_rate, transform=wave_augment)
    # Own generator: creating the loader's iterator must not draw from the global RNG
    # (dropout's), or a run resumed inside an epoch would diverge from an uninterrupted one.
    loader = DataLoader(train_set, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.data.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.data.num_workers > 0,
                        worker_init_fn=ignore_sigint, generator=torch.Generator().manual_seed(cfg.seed))
    _check_shared_memory(cfg, features=features_in_workers(device, cfg.data.num_workers))
    log.info("train: %d utterances (%.2f h), %d batches/epoch%s, padding %.1f%%; dev: %d utterances",
             len(train_utts), train_utts.durations.sum() / 3600, len(sampler),
             f" on each of {ctx.world_size} ranks" if ctx.enabled else "", 100 * sampler.padding_fraction(),
             len(dev_utts))
    return Data(vocab, train_utts, dev_utts, sampler, loader)


def _subword_vocabulary(cfg: TrainConfig, texts) -> Vocabulary:
    """``data.subwords`` units learnt on the training transcripts (deterministic, so every
    rank and a resumed run learn the same ones; :func:`resume` checks)."""
    try:
        vocab = train_subwords(texts, cfg.data.subwords, cfg.data.chars, cfg.data.numbers, cfg.data.subword_type)
    except ValueError as e:
        raise UserError(f"data.subwords={cfg.data.subwords}: {e}") from None
    words = [w for t in texts[:2000] for w in vocab.normalize(t).split()]
    log.info("subword units: %d %s pieces learnt on the training transcripts (%.2f pieces a word, without "
             "the spaces)", len(vocab.tokens) - 1, cfg.data.subword_type,
             sum(len(vocab.spell(w)) for w in words) / max(1, len(words)))
    return vocab


def build_parts(cfg: TrainConfig, ctx: distributed.Context, device: torch.device, data: Data) -> Parts:
    """Model (DDP-wrapped under torchrun), SpecAugment, optimizer, schedule, scaler, loss."""
    amp_dtype = autocast_dtype(device, cfg.precision)
    recognizer = Recognizer(cfg.features, cfg.model, data.vocab).to(device)
    spec_augment = (SpecAugment(cfg.augment, cfg.features).to(device) if cfg.augment.spec_enabled
                    else torch.nn.Identity())
    if cfg.features.normalize == "global":
        stats = DataLoader(AudioDataset(data.train[:500], data.vocab, cfg.features.sample_rate), batch_size=16,
                           collate_fn=collate)
        recognizer.features.fit_global_stats((b.waves, b.wave_lengths) for b in stats)
    model = recognizer.model
    if ctx.enabled:  # gradients averaged over ranks; weights start equal (broadcast from rank 0)
        # device_ids=None: the model sits on one device already, and DDP would otherwise copy
        # the CPU frame lengths to the GPU (then packing would wait to copy them back).
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=None)
        seed_everything(cfg.seed + 1_000_003 * ctx.rank)  # each rank its own dropout/masking draws
    total_steps = cfg.epochs * len(data.sampler)
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer, scheduler = build_optimizer(recognizer.model.parameters(), cfg.optim, total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ctc = torch.nn.CTCLoss(blank=data.vocab.blank, reduction="mean", zero_infinity=True)
    n_params = sum(p.numel() for p in recognizer.parameters())
    log.info("model: %s, %.2fM parameters, device %s, precision %s%s", _describe(cfg.model), n_params / 1e6,
             device, amp_dtype or "fp32", _group_description(ctx))
    return Parts(recognizer, model, spec_augment, optimizer, scheduler, scaler, ctc, amp_dtype)


def resume(cfg: TrainConfig, ctx: distributed.Context, parts: Parts, loop: LoopState) -> bool:
    """With ``resume=true``, load the newest good state of ``exp_dir`` into ``parts`` and
    ``loop``; True when one was found."""
    if not cfg.resume:
        return False
    # Rank 0 reads the checkpoint and sends it: other nodes need not see exp_dir.
    found = distributed.broadcast_object(load_latest(cfg.exp_dir, warn=log.warning) if ctx.is_main else None)
    if found is None:
        log.info("resume=true but %s holds no checkpoint yet: starting from scratch", cfg.exp_dir)
        return False
    path, state = found
    check_resumable(cfg, state.get("config") or {}, path)
    if vocabulary_from_state(state) != parts.recognizer.vocab:
        raise UserError(f"resume=true: {path} was trained on other output units than this run's data gives "
                        "(the training transcripts changed, so the subword units learnt from them did); resume "
                        "with the run's own training manifests, or start a new run")
    parts.recognizer.load_state_dict(state["state_dict"])
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    parts.scaler.load_state_dict(state["scaler"])
    ranks = state.get("rng_ranks") or [state["rng"]]
    set_rng_state(ranks[ctx.rank] if len(ranks) == ctx.world_size else state["rng"])
    loop.load_state_dict(state["progress"])
    if loop.world_size != ctx.world_size and loop.batch:
        log.warning("resuming on %d ranks a run saved on %d: epoch %d restarts from its first batch",
                    ctx.world_size, loop.world_size, loop.epoch + 1)
        loop.batch, loop.loss_sum, loop.n_batches = 0, 0.0, 0
    loop.world_size = ctx.world_size
    log.info("resumed from %s at epoch %d, batch %d, step %d", path, loop.epoch + 1, loop.batch, loop.step)
    return True


def training_state(cfg: TrainConfig, parts: Parts, loop: LoopState) -> dict:
    """Everything ``resume`` needs. Collective: every rank calls it (RNG states are gathered)."""
    rngs = distributed.all_gather_objects(rng_state())
    return {**parts.recognizer.describe(), "optimizer": parts.optimizer.state_dict(),
            "scheduler": parts.scheduler.state_dict(), "scaler": parts.scaler.state_dict(), "rng": rngs[0],
            "rng_ranks": rngs, "progress": loop.state_dict(), "config": dataclasses.asdict(cfg)}


def save_periodic(cfg: TrainConfig, ctx: distributed.Context, parts: Parts, loop: LoopState) -> None:
    """``checkpoints/step-N.pt``, linked to ``last.pt``; older ones pruned."""
    state = training_state(cfg, parts, loop)
    if ctx.is_main:
        exp_dir = Path(cfg.exp_dir)
        path = periodic_path(exp_dir, loop.step)
        save_checkpoint(path, state)
        link_or_copy(path, exp_dir / "last.pt")
        prune_checkpoints(exp_dir, cfg.keep_last_n, "step")


def train_one_epoch(cfg: TrainConfig, ctx: distributed.Context, device: torch.device, parts: Parts, data: Data,
                    loop: LoopState, epoch: int, stop: StopSignals, metrics: MetricsLog | None) -> None:
    """Train on this rank's batches of ``epoch`` (from ``loop.batch`` when resuming inside
    it); checkpoints every ``checkpoint_every`` steps, and on a stop signal."""
    data.sampler.set_epoch(epoch)
    data.sampler.skip = loop.batch
    parts.recognizer.train()
    parts.spec_augment.train()
    bar = tqdm(data.loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not (cfg.progress and ctx.is_main),
               leave=False, dynamic_ncols=True, file=sys.stderr)
    for batch in bar:
        loop.batch += 1
        loss, grad_norm = train_step(parts.recognizer, parts.model, parts.spec_augment, parts.ctc, parts.optimizer,
                                     parts.scaler, batch, device, parts.amp_dtype, cfg.optim.grad_clip)
        # One small all-reduce: mean loss over ranks, the (already averaged) gradient norm,
        # and whether any rank was asked to stop. Every rank decides alike.
        stats = torch.stack([loss.detach().float(), grad_norm.detach().float(),
                             torch.tensor(float(stop.signum), device=device)])
        loss_value, norm_value, stop_any = distributed.all_reduce_mean(stats).tolist()
        if math.isfinite(loss_value) and math.isfinite(norm_value):
            _optimizer_step(cfg, parts, loop, epoch, loss_value, norm_value, metrics)
            bar.set_postfix(loss=f"{loss_value:.3f}")
        else:
            parts.scaler.update()  # fp16: lowers the scale after an overflow
            if parts.scaler.is_enabled() and math.isfinite(loss_value):
                log.info("step %d: fp16 gradient overflow, loss scale lowered", loop.step)
            else:
                _bad_step(loop, cfg, epoch, metrics)
        if stop_any:
            save_periodic(cfg, ctx, parts, loop)
            raise TrainingInterrupted(stop.signum or signal.SIGTERM, loop.step)
        if cfg.checkpoint_every and loop.step % cfg.checkpoint_every == 0 and loop.bad_in_row == 0 and loop.step:
            save_periodic(cfg, ctx, parts, loop)
        if cfg.max_steps and loop.step >= cfg.max_steps:
            break
    bar.close()
    data.sampler.skip = 0


def _optimizer_step(cfg: TrainConfig, parts: Parts, loop: LoopState, epoch: int, loss_value: float,
                    norm_value: float, metrics: MetricsLog | None) -> None:
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.scheduler.step()
    loop.step += 1
    loop.bad_in_row = 0
    loop.loss_sum += loss_value
    loop.n_batches += 1
    if metrics and loop.step % cfg.log_every == 0:
        metrics.write({"kind": "train", "epoch": epoch, "step": loop.step, "loss": loss_value,
                       "grad_norm": norm_value, "lr": parts.scheduler.get_last_lr()[0]}, loop.step)


def end_epoch(cfg: TrainConfig, ctx: distributed.Context, device: torch.device, parts: Parts, data: Data,
              loop: LoopState, epoch: int, metrics: MetricsLog | None, seconds: float) -> dict:
    """Validate on dev, update ``loop``, write ``last.pt`` (``best.pt`` when dev WER
    improved) and the epoch's weights; returns the epoch's record."""
    exp_dir = Path(cfg.exp_dir)
    dev_loss, dev_rates = _evaluate_dev(parts.recognizer, data.dev, ctx, device, cfg)
    result = {"kind": "epoch", "epoch": epoch + 1, "step": loop.step,
              "train_loss": loop.loss_sum / max(loop.n_batches, 1), "dev_loss": dev_loss, "dev_wer": dev_rates.wer,
              "dev_cer": dev_rates.cer, "skipped_steps": loop.bad_steps, "seconds": seconds}
    improved = dev_rates.wer < loop.best_wer
    loop.epoch, loop.batch, loop.loss_sum, loop.n_batches = epoch + 1, 0, 0.0, 0
    loop.best_wer = min(dev_rates.wer, loop.best_wer)
    loop.since_best = 0 if improved else loop.since_best + 1
    log.info("epoch %d: train loss %.3f, dev loss %.3f, dev %s, %.0f s%s", epoch + 1, result["train_loss"], dev_loss,
             dev_rates.summary(), seconds, " (best)" if improved else "")
    state = training_state(cfg, parts, loop)
    if ctx.is_main:
        metrics.write(result, loop.step)
        save_checkpoint(exp_dir / "last.pt", state)
        if improved:
            link_or_copy(exp_dir / "last.pt", exp_dir / "best.pt")
        save_checkpoint(epoch_path(exp_dir, epoch + 1), parts.recognizer.describe())
        prune_checkpoints(exp_dir, max(cfg.keep_last_n, cfg.average_last) if cfg.keep_last_n else 0, "epoch")
        plot_curves(exp_dir / "metrics.jsonl", exp_dir / "curves.png")
    if _early_stop(cfg, loop):
        log.info("early stop: dev WER has not improved for %d epochs (best %.2f%%)", cfg.patience,
                 100 * loop.best_wer)
    return result


def train_step(recognizer: Recognizer, model: torch.nn.Module, spec_augment: torch.nn.Module,
               ctc: torch.nn.CTCLoss, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               batch: Batch, device: torch.device, amp_dtype: torch.dtype | None,
               grad_clip: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Features on ``device`` (or the loader worker's, ``batch.feats``), forward, CTC loss,
    backward; gradients unscaled and clipped.

    ``model`` is ``recognizer.model`` or its DDP wrapper. The optimizer is not stepped
    (``scaler.step(optimizer)``, ``scaler.update()``, ``scheduler.step()`` follow).
    Returns ``(loss, grad_norm)``, 0-d tensors on ``device`` (possibly non-finite).
    """
    optimizer.zero_grad(set_to_none=True)
    # Lengths stay on the CPU: sequence packing and the CTC loss read them there, so lengths
    # on the GPU would cost two GPU -> CPU synchronisations a step.
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        if batch.feats is None:
            waves = batch.waves.to(device, non_blocking=True)  # (batch, samples)
            feats, frames = recognizer.features(waves, batch.wave_lengths)  # (batch, frames, n_mels), frames on the CPU
        else:  # computed by the loader worker (FeatureCollate)
            feats, frames = batch.feats.to(device, non_blocking=True), batch.frames
        log_probs, lengths = model(spec_augment(feats), frames)  # (batch, steps, vocab)
    loss = ctc(log_probs.float().transpose(0, 1), batch.targets.to(device, non_blocking=True), lengths,
               batch.target_lengths)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(recognizer.model.parameters(), grad_clip)
    return loss, grad_norm


def features_in_workers(device: torch.device, num_workers: int) -> bool:
    """Whether the loader workers compute the log-mel features (:class:`asr.data.FeatureCollate`):
    in CPU training with workers, so the step's thread only trains; on CUDA the step computes
    them on the GPU."""
    return device.type == "cpu" and num_workers > 0


def shared_memory_needed(cfg: TrainConfig, prefetch: int = 2, features: bool = False) -> int:
    """Bytes of /dev/shm the loader workers fill: each holds ``prefetch`` batches of up to
    ``max_batch_seconds`` of float32 audio (plus speed perturbation's 1/0.9 at most) and, when
    the workers compute them (``features``: CPU training), its ``n_mels`` features a hop."""
    speed = 1 / min(cfg.augment.speeds) if cfg.augment.speeds else 1.0
    per_sample = 1 + (cfg.features.n_mels / cfg.features.hop_length if features else 0)
    return int(cfg.data.num_workers * prefetch * cfg.data.max_batch_seconds * speed * cfg.features.sample_rate * 4
               * per_sample)


def _check_shared_memory(cfg: TrainConfig, shm: str = "/dev/shm", features: bool = False) -> None:
    """Warn before the loader workers die of a small /dev/shm (containers default to 64 MB)."""
    need = shared_memory_needed(cfg, features=features)
    try:
        have = shutil.disk_usage(shm).free
    except OSError:
        return
    if cfg.data.num_workers and have < need:
        log.warning("%s has %.0f MB free but %d loader workers may hold %.0f MB of batches there "
                    "(data.max_batch_seconds=%g); give the container more (docker run --shm-size=8g, or "
                    "--ipc=host), or lower data.num_workers or data.max_batch_seconds", shm, have / 2**20,
                    cfg.data.num_workers, need / 2**20, cfg.data.max_batch_seconds)


def _describe(model_cfg) -> str:
    """``ds2 (rnn_type=lstm, hidden_size=320, ...)``: the model's name and options, for the log."""
    options = {k: v for k, v in dataclasses.asdict(model_cfg).items() if k != "name"}
    return f"{model_cfg.name} ({', '.join(f'{k}={v}' for k, v in options.items())})"


def _group_description(ctx) -> str:
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return ""
    return f", rank {ctx.rank} of {ctx.world_size} ({torch.distributed.get_backend()}{', DDP' if ctx.enabled else ''})"


def _early_stop(cfg: TrainConfig, loop: LoopState) -> bool:
    return bool(cfg.patience) and loop.since_best >= cfg.patience


def _bad_step(loop: LoopState, cfg: TrainConfig, epoch: int, metrics: MetricsLog | None) -> None:
    """Count a skipped step (non-finite loss or gradient); stop after too many in a row."""
    loop.bad_steps += 1
    loop.bad_in_row += 1
    log.warning("epoch %d, step %d: non-finite loss or gradient, step skipped (%d in a row, %d in all)",
                epoch + 1, loop.step, loop.bad_in_row, loop.bad_steps)
    if metrics:
        metrics.write({"kind": "skip", "epoch": epoch, "step": loop.step, "skipped_steps": loop.bad_steps,
                       "in_a_row": loop.bad_in_row}, loop.step)
    if cfg.max_bad_steps and loop.bad_in_row >= cfg.max_bad_steps:
        raise UserError(f"training diverged: {loop.bad_in_row} steps in a row had a non-finite loss or "
                        f"gradient (epoch {epoch + 1}, step {loop.step}); lower optim.lr, raise "
                        "optim.warmup_steps or check the data, then resume=true continues from last.pt "
                        "(the last good state)")


def _evaluate_dev(recognizer: Recognizer, dev_utts: list, ctx: distributed.Context, device: torch.device,
                  cfg: TrainConfig) -> tuple[float, ErrorRates]:
    """Dev loss and error rates; each rank decodes its share and the counts are combined."""
    shard = dev_utts[ctx.rank::ctx.world_size]
    part: tuple[list, list, float] = ([], [], 0.0)
    if shard:
        ev = evaluate(recognizer, shard, device=device, precision=cfg.precision,
                      max_batch_seconds=cfg.data.max_batch_seconds)
        part = (ev.references, ev.hypotheses, ev.loss * len(shard))
    parts = distributed.all_gather_objects(part)
    refs = [r for p in parts for r in p[0]]
    hyps = [h for p in parts for h in p[1]]
    return sum(p[2] for p in parts) / max(len(dev_utts), 1), error_rates(refs, hyps)


def _average(cfg: TrainConfig, exp_dir: Path, dev_utts: list, device: torch.device,
             metrics: MetricsLog | None) -> float:
    """Average the last ``cfg.average_last`` epochs' weights into ``averaged.pt``; its dev WER."""
    from asr.average import average_checkpoints

    paths = list_checkpoints(exp_dir, "epoch")[-cfg.average_last:]
    state = average_checkpoints(paths)
    save_checkpoint(exp_dir / "averaged.pt", state)
    averaged = Recognizer.from_checkpoint(state, device)
    ev = evaluate(averaged, dev_utts, device=device, precision=cfg.precision,
                  max_batch_seconds=cfg.data.max_batch_seconds)
    log.info("averaged.pt: weights of %s averaged; dev loss %.3f, dev %s", ", ".join(p.stem for p in paths),
             ev.loss, ev.rates.summary())
    if metrics:
        metrics.write({"kind": "average", "epochs": len(paths), "dev_loss": ev.loss, "dev_wer": ev.rates.wer,
                       "dev_cer": ev.rates.cer}, 0)
    return ev.rates.wer


def _quiet_logging() -> None:
    """Ranks other than 0 log warnings only, and not to rank 0's train.log."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, logging.FileHandler):
            root.removeHandler(handler)
            handler.close()
    logging.getLogger("asr").setLevel(logging.WARNING)


def _rank_independent(cfg: TrainConfig) -> dict:
    """The config every rank must share (``progress`` is display only)."""
    d = dataclasses.asdict(cfg)
    d.pop("progress")
    return d


def _write_config(cfg: TrainConfig, path: Path) -> None:
    import yaml

    from asr.utils import atomic_open

    with atomic_open(path) as f:
        yaml.safe_dump(dataclasses.asdict(cfg), f, sort_keys=False)


def _run(cfg: TrainConfig) -> None:
    try:
        train(cfg)
    except TrainingInterrupted as e:
        log.warning("%s", e)
        print(f"asr-train: {e}", file=sys.stderr)
        sys.exit(128 + e.signum)
    except KeyboardInterrupt:
        print("asr-train: interrupted", file=sys.stderr)
        sys.exit(130)


def cli() -> None:
    """``asr-train``: Hydra composes ``asr/conf/`` with the command line, then calls :func:`train`."""
    from asr.config import hydra_main

    hydra_main(_run, TrainConfig, CONFIG_VARIANTS)


if __name__ == "__main__":
    cli()
