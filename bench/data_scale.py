"""The training data path at LibriSpeech 960 h scale: start-up time and memory.

    python bench/data_scale.py                         # 281,241 utterances (960 h), 1/4/8 workers
    python bench/data_scale.py --utterances 28539 --workers 1,4   # train-clean-100's size

Writes (once, into ``--work``) a manifest of LibriSpeech 960 h's size and shape: 281,241
utterances, durations drawn like LibriSpeech's (most 11-17 s, a tail down to 1 s and up to
35 s, 12.3 s on average), transcripts of about 16 characters a second; the audio is 35 FLAC
files (1 s, 2 s, ... 35 s of noise, 16 kHz) reused, each utterance pointing at the one of its
duration. Then, with the code ``asr.train`` runs (``librispeech_960`` preset: 8 ranks' share
of 2,400-s batches, speed perturbation):

1. start-up: reading the manifest, dropping unalignable utterances, the per-rank duration
   sampler, the dataset; seconds and main-process memory above the import baseline;
2. the DataLoader with 1, 4 and 8 workers over ``--batches`` batches of ``--batch-seconds``
   (smaller than the preset's, so that thousands of batches fit a short run): total memory
   of the main process and its workers (PSS, so shared pages count once), what each worker
   adds, audio seconds delivered per second per worker, and memory at the start and end of
   the run (flat: no growth per batch).

Figures are printed beside the targets (issue 15: ready in under 15 s; manifest and sampler
under 150 MB above the import baseline; 8 workers add under 0.5 GB together).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import asr.data as data  # noqa: E402
import asr.runtime  # noqa: E402
import asr.train  # noqa: E402, F401  (the import baseline includes what asr-train imports)
from asr.augment import AugmentConfig, WaveAugment  # noqa: E402
from asr.features import FeatureConfig  # noqa: E402
from asr.models import BiRNNConfig  # noqa: E402
from asr.recognizer import output_steps  # noqa: E402
from asr.text import Vocabulary  # noqa: E402

LIBRISPEECH_960 = 281_241
WORDS = ("the and of to a in that he was it his i with as had for you her but not be she at is him on "
         "by which have so they this all from were one said when my would there no their we me then "
         "what been could an upon little out into them more man if some very or time who did any now "
         "great before should over old like our well down made after these again good came know").split()


def write_corpus(work: Path, n: int, seed: int = 0) -> Path:
    """The manifest (and its 35 FLAC files) under ``work``, made once."""
    manifest = work / f"train-{n}.jsonl"
    if manifest.exists():
        return manifest
    rng = np.random.default_rng(seed)
    audio = work / "flac"
    audio.mkdir(parents=True, exist_ok=True)
    for s in range(1, 36):
        path = audio / f"{s:02d}.flac"
        if not path.exists():
            sf.write(path, (0.05 * rng.standard_normal(s * 16000)).astype(np.float32), 16000, format="FLAC")
    main = np.clip(rng.normal(14.0, 1.8, n), 10.5, 17.5)
    short = rng.uniform(1.0, 10.5, n)
    long = rng.uniform(17.5, 35.0, n)
    pick = rng.random(n)
    durations = np.where(pick < 0.78, main, np.where(pick < 0.99, short, long)).round().clip(1, 35).astype(int)
    tmp = manifest.with_suffix(".tmp")
    with open(tmp, "w") as f:
        for i, d in enumerate(durations):
            words = rng.choice(WORDS, size=max(1, int(d * 2.9)))
            f.write(json.dumps({"audio_filepath": f"flac/{d:02d}.flac", "duration": float(d),
                                "text": " ".join(words), "id": f"utt-{i:06d}"}) + "\n")
    os.replace(tmp, manifest)
    return manifest


def pss_mb(pids: list[int]) -> float:
    """Proportional set size of these processes together (a shared page counts once), MB."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


def uss_mb(pid: int) -> float:
    """Memory only this process holds (private pages), MB."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return sum(int(line.split()[1]) for line in f if line.startswith(("Private_Clean:", "Private_Dirty:"))) / 1024
    except OSError:
        return float("nan")


def children() -> list[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def startup(manifest: Path, ranks: int) -> tuple[dict, object, object]:
    """The start of ``asr.train``'s data path, step by step: seconds and memory."""
    vocab = Vocabulary()
    features = FeatureConfig()
    augment = AugmentConfig(speeds=[0.9, 1.0, 1.1])
    fastest = max(augment.speeds)
    steps = lambda d: output_steps(d / fastest, features, BiRNNConfig(subsample=3))  # noqa: E731
    figures, t0, base = {}, time.perf_counter(), pss_mb([os.getpid()])
    cpu0 = time.process_time()
    read = getattr(data, "read_manifest_table", data.read_manifests)  # the older code reads a list
    utts = read(str(manifest))
    figures["read_s"], figures["read_mb"] = time.perf_counter() - t0, pss_mb([os.getpid()]) - base
    t = time.perf_counter()
    utts = data.drop_unalignable(utts, vocab, steps, "train")
    figures["filter_s"] = time.perf_counter() - t
    t = time.perf_counter()
    durations = getattr(utts, "durations", None)
    sampler = data.DurationBatchSampler(durations if durations is not None else [u.duration for u in utts], 2400.0,
                                        0, shuffle=True, seed=1, num_replicas=ranks, rank=0, item_seeds=True)
    figures["batches_per_rank"] = len(sampler)
    figures["sampler_s"] = time.perf_counter() - t
    dataset = data.AudioDataset(utts, vocab, features.sample_rate, transform=WaveAugment(augment, 16000))
    del utts
    gc.collect()
    figures["ready_s"] = time.perf_counter() - t0
    figures["ready_cpu_s"] = time.process_time() - cpu0  # free of other processes' load
    figures["ready_mb"] = pss_mb([os.getpid()]) - base
    return figures, dataset, sampler


def loader_run(dataset, workers: int, batches: int, batch_seconds: float, freeze: bool) -> dict:
    durations = getattr(dataset.utterances, "durations", None)
    if durations is None:
        durations = [u.duration for u in dataset.utterances]
    sampler = data.DurationBatchSampler(durations, batch_seconds, 0, shuffle=True, seed=2, item_seeds=True)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=data.collate, num_workers=workers,
                        persistent_workers=True, worker_init_fn=asr.runtime.ignore_sigint)
    if freeze:
        gc.freeze()  # as asr.train does before its first epoch
    main_before = pss_mb([os.getpid()])
    audio = 0.0
    samples: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    it = iter(loader)
    for n in range(1, batches + 1):
        try:
            batch = next(it)
        except StopIteration:
            break
        audio += batch.wave_lengths.sum().item() / 16000
        if n in (10, batches) or n % max(1, batches // 10) == 0:
            samples.append((n, pss_mb([os.getpid(), *children()])))
    wall = time.perf_counter() - t0
    kids = children()
    per_worker = [uss_mb(p) for p in kids]
    total = pss_mb([os.getpid(), *kids])
    del it, loader
    gc.unfreeze()
    return {"workers": workers, "batches": n, "audio_s": audio, "wall_s": wall,
            "per_worker_rate": audio / wall / workers, "total_mb": total, "main_mb": main_before,
            "workers_add_mb": total - main_before, "worker_private_mb": per_worker,
            "first_mb": samples[0][1], "last_mb": samples[-1][1], "samples": samples}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--utterances", type=int, default=LIBRISPEECH_960)
    p.add_argument("--work", default="/tmp/asr-data-scale", help="where the manifest and FLAC files are made (kept)")
    p.add_argument("--ranks", type=int, default=8, help="ranks the sampler shares batches between")
    p.add_argument("--workers", default="1,4,8")
    p.add_argument("--batches", type=int, default=2000)
    p.add_argument("--batch-seconds", type=float, default=30.0)
    p.add_argument("--no-freeze", action="store_true", help="skip gc.freeze() before the workers start")
    args = p.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # more workers than cores: on purpose
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    manifest = write_corpus(work, args.utterances)
    gc.collect()
    baseline = pss_mb([os.getpid()])
    fig, dataset, sampler = startup(manifest, args.ranks)
    hours = float(np.sum(getattr(dataset.utterances, "durations", None)
                         if hasattr(dataset.utterances, "durations") else [u.duration for u in dataset.utterances])) / 3600
    print(f"{len(dataset):,} utterances ({hours:,.0f} h) kept; import baseline {baseline:.0f} MB PSS; "
          f"{os.cpu_count()} CPUs")
    print(f"start-up   read {fig['read_s']:.1f} s, filter {fig['filter_s']:.1f} s, sampler {fig['sampler_s']:.1f} s "
          f"({fig['batches_per_rank']:,} batches/rank of {args.ranks}): ready in {fig['ready_s']:.1f} s, "
          f"{fig['ready_cpu_s']:.1f} s of CPU (target < 15 s)")
    print(f"memory     manifest read: +{fig['read_mb']:.0f} MB; dataset + sampler ready: +{fig['ready_mb']:.0f} MB "
          f"above the import baseline (target < 150 MB)")
    for w in (int(x) for x in args.workers.split(",") if x):  # --workers "": start-up only
        r = loader_run(dataset, w, args.batches, args.batch_seconds, not args.no_freeze)
        print(f"{w} worker{'s' if w > 1 else ' '}  {r['batches']} batches of <= {args.batch_seconds:g} s: "
              f"{r['per_worker_rate']:,.0f} s audio/s per worker; total {r['total_mb']:.0f} MB PSS, "
              f"workers add {r['workers_add_mb']:.0f} MB (target < 500 MB for 8), each holds "
              f"{np.mean(r['worker_private_mb']):.0f} MB private; total at batch "
              + ", ".join(f"{n}: {mb:.0f}" for n, mb in r["samples"][::3] + r["samples"][-1:]) + " MB")


if __name__ == "__main__":
    main()
