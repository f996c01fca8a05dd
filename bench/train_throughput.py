"""Training throughput: the full ``asr-train`` step against the bare ``nn.LSTM`` kernel.

Both sides see the same batches (duration-bucketed, from a manifest) and the same shapes:

- full: waveforms -> log-mel features -> BiRNN-CTC -> CTC loss -> backward -> gradient
  clipping -> AdamW and schedule step (``asr.train.train_step`` and the three calls that
  follow it in ``asr.train.train``). As in ``asr-train``, the features are computed on the
  GPU inside the step, and on the CPU by the loader worker (``--features-in-step`` moves
  them into the step there too);
- bare: ``nn.LSTM(num_layers, bidirectional)`` forward and backward on random input of the
  model's encoder shape ``(batch, steps, n_mels * subsample)``.

It prints seconds of (unpadded) audio trained per wall-clock second for both, and their
ratio. The two sides alternate batch by batch (full, bare, full, bare, ...), so a noisy
shared machine affects both alike, and the fastest repetition of each side is kept (the
medians are printed too). CPU runs use one thread::

    python bench/train_throughput.py                       # demo workload, CPU
    python bench/train_throughput.py --device cuda --precision bf16
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from asr.data import AudioDataset, DurationBatchSampler, FeatureCollate, collate, read_manifest  # noqa: E402
from asr.features import FeatureConfig  # noqa: E402
from asr.models import BiRNNConfig  # noqa: E402
from asr.models.rnn import rnn_precision  # noqa: E402
from asr.optim import OptimConfig, build_optimizer  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.text import Vocabulary  # noqa: E402
from asr.train import features_in_workers, train_step  # noqa: E402
from asr.utils import autocast_dtype, resolve_device  # noqa: E402


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--manifest", default=str(REPO / "exp/demo/data/train.jsonl"))
    p.add_argument("--batches", type=int, default=6, help="batches per repetition")
    p.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per side")
    p.add_argument("--max-batch-seconds", type=float, default=100.0, help="as asr/conf/experiment/demo.yaml")
    p.add_argument("--hidden", type=int, default=192)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--n-mels", type=int, default=64)
    p.add_argument("--subsample", type=int, default=3)
    p.add_argument("--dropout", type=float, default=0.1, help="model dropout (demo: 0.1; the bare kernel has none)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (autocast, CUDA)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    p.add_argument("--features-in-step", action="store_true",
                   help="CPU: compute the log-mel features in the step, not in the loader worker as asr-train does")
    return p.parse_args()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(manifest: str, hidden: int = 192, layers: int = 2, n_mels: int = 64, subsample: int = 3,
            dropout: float = 0.1, device: str = "cpu", precision: str = "fp32", batches: int = 6, repeats: int = 5,
            max_batch_seconds: float = 100.0, max_batch_size: int = 64, features_in_step: bool = False) -> dict:
    """Seconds of audio trained per second: the full step and the bare kernel, interleaved.

    Returns ``full``/``bare`` (rates, best repetition), ``ratio`` (full / bare),
    ``ratio_median``, ``cpu_ratio`` (bare / full thread CPU seconds), ``audio_s``,
    ``padding``, ``load_rate`` (one loader worker, features included when it computes them),
    ``worker_features`` and the ``times`` of each repetition.
    """
    torch.manual_seed(0)
    device = resolve_device(device)
    amp_dtype = autocast_dtype(device, precision)

    vocab = Vocabulary()
    feature_cfg = FeatureConfig(n_mels=n_mels)
    model_cfg = BiRNNConfig(hidden_size=hidden, num_layers=layers, subsample=subsample, dropout=dropout)
    recognizer = Recognizer(feature_cfg, model_cfg, vocab).to(device).train()
    utts = read_manifest(manifest)
    sampler = DurationBatchSampler([u.duration for u in utts], max_batch_seconds, max_batch_size, shuffle=True, seed=1)
    # As asr-train: CPU training computes the features in the loader worker, CUDA in the step.
    worker_features = features_in_workers(device, num_workers=1) and not features_in_step
    loader = DataLoader(AudioDataset(utts, vocab, feature_cfg.sample_rate), batch_sampler=sampler,
                        collate_fn=FeatureCollate(recognizer.features) if worker_features else collate,
                        num_workers=1, pin_memory=device.type == "cuda")
    start = time.perf_counter()
    loaded = []
    for batch in loader:
        loaded.append(batch)
        if len(loaded) == batches:
            break
    load_s = time.perf_counter() - start
    audio_s = sum(b.wave_lengths.sum().item() for b in loaded) / feature_cfg.sample_rate

    # The full training step, as asr.train.train runs it.
    optimizer, scheduler = build_optimizer(recognizer.model.parameters(), OptimConfig(), 10_000)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    ctc = torch.nn.CTCLoss(blank=vocab.blank, reduction="mean", zero_infinity=True)
    identity = torch.nn.Identity()

    def full(batch) -> None:
        train_step(recognizer, recognizer.model, identity, ctc, optimizer, scaler, batch, device, amp_dtype, 5.0)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()

    # The bare kernel on the same encoder shapes, in the precision the model's RNN runs in.
    lstm = torch.nn.LSTM(n_mels * subsample, hidden, num_layers=layers, batch_first=True,
                         bidirectional=True).to(device)
    shapes = []
    for b in loaded:
        frames = feature_cfg.num_frames(b.waves.shape[1])
        shapes.append((b.waves.shape[0], -(-frames // subsample)))
    inputs = [torch.randn(n, t, n_mels * subsample, device=device) for n, t in shapes]

    def bare(x) -> None:
        lstm.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            with rnn_precision(device):
                y, _ = lstm(x)
        y.float().sum().backward()

    for batch, x in zip(loaded, inputs):  # warm-up (allocator, kernels)
        full(batch), bare(x)
    # Interleaved batch by batch (full, bare, full, bare, ...): load from other processes
    # falls on both sides alike. Per side, the fastest of the repetitions is kept.
    # CPU time of this thread is kept too: with one thread it is the work itself, free of
    # the waiting that other processes cause, so its ratio is the steadier cross-check.
    times: dict[str, list[float]] = {"full": [], "bare": []}
    cpu = {"full": 0.0, "bare": 0.0}
    for _ in range(repeats):
        total = {"full": 0.0, "bare": 0.0}
        for batch, x in zip(loaded, inputs):
            for name, fn, arg in (("full", full, batch), ("bare", bare, x)):
                sync(device)
                t, c = time.perf_counter(), time.thread_time()
                fn(arg)
                sync(device)
                total[name] += time.perf_counter() - t
                cpu[name] += time.thread_time() - c
        for name in total:
            times[name].append(total[name])
    padded_s = sum(b.waves.numel() for b in loaded) / feature_cfg.sample_rate
    full_rate, bare_rate = audio_s / min(times["full"]), audio_s / min(times["bare"])
    return {"device": str(device), "precision": str(amp_dtype or "fp32"), "batches": len(loaded), "audio_s": audio_s,
            "padding": 1 - audio_s / padded_s, "full": full_rate, "bare": bare_rate, "ratio": full_rate / bare_rate,
            "ratio_median": statistics.median(times["bare"]) / statistics.median(times["full"]),
            "cpu_ratio": cpu["bare"] / cpu["full"], "load_rate": audio_s / load_s, "worker_features": worker_features,
            "times": times}


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    r = measure(args.manifest, args.hidden, args.layers, args.n_mels, args.subsample, args.dropout, args.device,
                args.precision, args.batches, args.repeats, args.max_batch_seconds,
                features_in_step=args.features_in_step)
    print(f"device {r['device']}, precision {r['precision']}, threads {torch.get_num_threads()}; "
          f"{r['batches']} batches, {r['audio_s']:.1f} s of audio, padding {100 * r['padding']:.1f}%; "
          f"model {args.layers}x{args.hidden} BiLSTM on {args.n_mels}x{args.subsample} features")
    times = r["times"]
    for name, label in (("full", "full asr-train step "), ("bare", "bare nn.LSTM fwd+bwd")):
        print(f"{label}: {r[name]:8.1f} s audio / s   (best of {args.repeats}: {min(times[name]):.3f} s, "
              f"median {statistics.median(times[name]):.3f} s)")
    print(f"ratio full / bare   : {r['ratio']:8.1%}   (target >= 90%; from medians {r['ratio_median']:.1%})")
    if r["device"] == "cpu" and torch.get_num_threads() == 1:
        print(f"ratio of CPU time   : {r['cpu_ratio']:8.1%}   (bare / full thread CPU seconds)")
    where = "features in the worker" if r["worker_features"] else "waveforms only"
    print(f"data loading (1 worker, first pass, {where}): {r['load_rate']:8.1f} s audio / s "
          f"(the step needs {r['full']:.1f})")


if __name__ == "__main__":
    main()
