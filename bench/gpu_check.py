"""The GPU check: one command that exercises the GPU path end to end and prints one table.

    python bench/gpu_check.py                  # one CUDA GPU, no network: a few minutes
    python bench/gpu_check.py --dry-run        # the same code paths on the CPU, tiny sizes, in seconds

Parts (each one timed; a failing part is reported and the others still run):

1. ``cuda tests``: ``pytest -m cuda tests`` (LSTM compute dtype, gradients kept under mixed
   precision, the grad scaler, packed sequences on cuDNN, features on the GPU, CUDA = CPU).
2. ``gradients``: the ``librispeech_100`` model at initialisation, one training step per
   precision: the recurrent layers' compute dtype, the share of their weight gradients that
   are exactly zero, and the cosine to the float32 gradients. ``bf16, RNN under autocast``
   is the behaviour before ``asr.models.rnn.rnn_precision`` (cuDNN runs it in fp16, unscaled).
3. ``train <precision>``: ``asr-train experiment=demo`` on freshly synthesised demo data for
   a fixed number of steps: first and last logged loss, skipped and fp16-overflow steps, time.
4. ``throughput``: the full training step against a bare cuDNN ``nn.LSTM`` forward+backward at
   the same shapes (``bench/train_throughput.py``), at the demo's and ``librispeech_100``'s size.
5. ``decode``: the trained model on the test set, greedy and beam with a 3-gram LM, and a
   20-minute recording made of test utterances: WER and real-time factors.
6. ``torchrun``: ``torchrun --nproc-per-node 1 -m asr.train`` for a few steps (NCCL on a GPU,
   gloo in the dry run).

Exits 1 if any part failed. ``--out DIR`` also writes ``gpu_check.md`` (the table) and
``gpu_check.json`` (every figure) there.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import logging
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import asr.models.rnn  # noqa: E402
from asr.data import Batch, read_manifest, write_manifest  # noqa: E402
from asr.features import FeatureConfig  # noqa: E402
from asr.models import BiRNNConfig  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.text import Vocabulary  # noqa: E402
from asr.train import train_step  # noqa: E402
from asr.utils import autocast_dtype  # noqa: E402


@dataclass
class Size:
    """How big each part runs: the GPU check, or the dry run on the CPU."""

    n_train: int = 1500
    n_dev: int = 100
    n_test: int = 200
    train_steps: int = 300
    torchrun_steps: int = 20
    long_minutes: float = 20.0
    grad_batch: int = 64  # utterances of grad_seconds in the gradient study
    grad_seconds: int = 12
    recipe_model: dict = field(default_factory=lambda: {"hidden_size": 320, "num_layers": 5, "n_mels": 80})
    demo_model: dict = field(default_factory=lambda: {"hidden_size": 256, "num_layers": 2, "n_mels": 64})
    throughput_batches: int = 8
    throughput_repeats: int = 3
    train_overrides: tuple = ()


DRY = Size(n_train=24, n_dev=6, n_test=6, train_steps=4, torchrun_steps=2, long_minutes=0.5, grad_batch=2,
           grad_seconds=1, recipe_model={"hidden_size": 16, "num_layers": 2, "n_mels": 16},
           demo_model={"hidden_size": 16, "num_layers": 1, "n_mels": 16}, throughput_batches=2,
           throughput_repeats=1,
           train_overrides=("model.hidden_size=16", "model.num_layers=1", "features.n_mels=16",
                            "data.max_batch_seconds=20"))


@dataclass
class Row:
    part: str
    ok: bool
    seconds: float
    summary: str
    figures: dict = field(default_factory=dict)


class Check:
    """Runs the parts in order; each records a :class:`Row` whatever happens inside it."""

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.dry = args.dry_run
        self.size = DRY if self.dry else Size()
        self.device = "cpu" if self.dry else "cuda"
        self.work = Path(args.work)
        self.rows: list[Row] = []

    def run(self, part: str, fn, *a) -> object:
        print(f"--- {part}", flush=True)
        start = time.perf_counter()
        try:
            summary, figures, value = fn(*a)
            ok = True
        except Exception as e:  # noqa: BLE001 - a failing part is reported, the others still run
            traceback.print_exc()
            summary, figures, value, ok = f"FAILED: {type(e).__name__}: {e}".splitlines()[0][:300], {}, None, False
        row = Row(part, ok, time.perf_counter() - start, summary, figures)
        self.rows.append(row)
        self.write()
        print(f"{'ok' if ok else 'FAIL'} {part}: {summary} ({row.seconds:.0f} s)", flush=True)
        return value

    # ----------------------------------------------------------------- parts

    def cuda_tests(self):
        cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", str(REPO / "tests")]
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
        tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-300:]
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep="\n")
        counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|failed|skipped|error|errors|deselected)", tail)}
        # pytest exits 5 when nothing is selected; the dry run (no GPU) sees only skips.
        failed = counts.get("failed", 0) + counts.get("error", 0) + counts.get("errors", 0)
        if proc.returncode not in (0, 5) or failed or (not self.dry and not counts.get("passed")):
            raise RuntimeError(f"pytest -m cuda: {tail}")
        return tail, counts, None

    def gradients(self):
        """One step of the recipe-sized model per precision, same weights and batch."""
        device = torch.device(self.device)
        s = self.size
        m = s.recipe_model
        vocab = Vocabulary()
        torch.manual_seed(0)
        rec = Recognizer(FeatureConfig(n_mels=m["n_mels"]),
                         BiRNNConfig(hidden_size=m["hidden_size"], num_layers=m["num_layers"], dropout=0.0),
                         vocab).to(device).train()
        g = torch.Generator().manual_seed(1)
        n, samples = s.grad_batch, s.grad_seconds * 16000
        labels = max(2, s.grad_seconds * 12)  # about 12 characters a second
        batch = Batch(waves=0.1 * torch.randn(n, samples, generator=g), wave_lengths=torch.full((n,), samples),
                      targets=torch.randint(1, len(vocab), (n, labels), generator=g),
                      target_lengths=torch.full((n,), labels), indices=list(range(n)))
        ctc = torch.nn.CTCLoss(blank=vocab.blank, zero_infinity=True)
        dtypes: set = set()

        def hook(module, inputs, out):
            y = out[0]
            dtypes.add(str((y.data if isinstance(y, torch.nn.utils.rnn.PackedSequence) else y).dtype)[6:])

        for rnn in rec.model.rnns:
            rnn.register_forward_hook(hook)

        def step(amp_dtype, legacy: bool = False):
            dtypes.clear()
            opt = torch.optim.SGD(rec.model.parameters(), lr=0.0)
            scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
            patch = _patched(asr.models.rnn, "rnn_precision", lambda d: contextlib.nullcontext()) if legacy \
                else contextlib.nullcontext()
            times = []
            with patch:
                for _ in range(3):  # the last two are timed (the first warms up)
                    _sync(device)
                    t = time.perf_counter()
                    train_step(rec, rec.model, torch.nn.Identity(), ctc, opt, scaler, batch, device, amp_dtype, 1e9)
                    scaler.update()
                    _sync(device)
                    times.append(time.perf_counter() - t)
            grads = torch.cat([p.grad.float().flatten() for p in rec.model.rnns.parameters()])
            return grads, sorted(dtypes), min(times[1:])

        ref, ref_dtypes, ref_time = step(None)
        figures = {"fp32": {"rnn_dtype": ref_dtypes, "zero_grads": _zeros(ref), "cosine": 1.0, "step_s": ref_time}}
        modes = [("fp16 + scaler", torch.float16, False), ("bf16 (RNN fp32)", torch.bfloat16, False),
                 ("bf16, RNN under autocast (before)", torch.bfloat16, True)]
        if device.type == "cpu":  # the dry run: oneDNN has no fp16 LSTM
            modes = [m for m in modes if m[1] != torch.float16]
        for name, dtype, legacy in modes:
            got, dts, t = step(dtype, legacy)
            figures[name] = {"rnn_dtype": dts, "zero_grads": _zeros(got), "step_s": t,
                             "cosine": torch.nn.functional.cosine_similarity(ref, got, dim=0).item()}
        summary = "; ".join(f"{k}: RNN {'/'.join(v['rnn_dtype'])}, {100 * v['zero_grads']:.1f}% zero grads, "
                            f"cos {v['cosine']:.3f}, {1000 * v['step_s']:.0f} ms" for k, v in figures.items())
        if any(figures[k]["cosine"] <= 0.95 for k in ("fp16 + scaler", "bf16 (RNN fp32)") if k in figures):
            raise RuntimeError(f"mixed-precision gradients differ from float32: {summary}")
        return summary, figures, None

    def lstm_kernels(self):
        """The bare recurrent stack of the recipe model, forward + backward, in each dtype cuDNN
        might run it in: what the precision choice buys in speed."""
        device = torch.device(self.device)
        m, s = self.size.recipe_model, self.size
        steps = s.grad_seconds * 100 // 3
        figures = {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
        kinds = [("fp32", torch.float32), ("fp16", torch.float16), ("bf16", torch.bfloat16)]
        for name, dtype in kinds:
            if device.type == "cpu" and dtype == torch.float16:
                continue
            try:
                torch.manual_seed(0)
                lstm = torch.nn.LSTM(m["n_mels"] * 3, m["hidden_size"], num_layers=m["num_layers"], batch_first=True,
                                     bidirectional=True).to(device, dtype)
                x = torch.randn(s.grad_batch, steps, m["n_mels"] * 3, device=device, dtype=dtype, requires_grad=True)
                times = []
                for _ in range(4):
                    _sync(device)
                    t = time.perf_counter()
                    y, _ = lstm(x)
                    y.float().square().mean().backward()
                    _sync(device)
                    times.append(time.perf_counter() - t)
                figures[name] = {"ms": 1000 * min(times[1:])}
            except Exception as e:  # noqa: BLE001 - a dtype the backend lacks is a finding, not a failure
                figures[name] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"}
        summary = ", ".join(f"{k} {v['ms']:.1f} ms" if "ms" in v else f"{k} unsupported ({v['error'][:60]})"
                            for k, v in figures.items() if isinstance(v, dict))
        return f"{m['num_layers']}x{m['hidden_size']} BiLSTM, {s.grad_batch}x{steps} steps: {summary}", figures, None

    def prepare_data(self):
        data = Path(self.args.data) if self.args.data else self.work / "data"
        if not (data / "test.jsonl").exists():
            synthesise_demo(data, self.size.n_train, self.size.n_dev, self.size.n_test,
                            workers=1 if self.dry else min(8, os.cpu_count() or 1))
        hours = {k: sum(u.duration for u in read_manifest(data / f"{k}.jsonl")) / 3600
                 for k in ("train", "dev", "test")}
        return ", ".join(f"{k} {v:.2f} h" for k, v in hours.items()), hours, data

    def train(self, data: Path, precision: str):
        exp = self.work / f"train-{precision}"
        cmd = [sys.executable, "-m", "asr.train", *self._train_args(data, exp, precision, self.size.train_steps)]
        proc, wall = _run_logged(cmd, exp.with_suffix(".log"))
        overflow = proc.stdout.count("fp16 gradient overflow") + proc.stderr.count("fp16 gradient overflow")
        records = [json.loads(line) for line in (exp / "metrics.jsonl").open()]
        losses = [r["loss"] for r in records if r["kind"] == "train"]
        epochs = [r for r in records if r["kind"] == "epoch"]
        skipped = epochs[-1]["skipped_steps"] if epochs else None
        steps = max(r["step"] for r in records)
        if proc.returncode != 0:
            raise RuntimeError(f"asr-train exited {proc.returncode}: {_last_line(proc)}")
        if not self.dry and not (len(losses) >= 2 and losses[-1] < 0.8 * losses[0]):
            raise RuntimeError(f"loss did not go down: {losses}")
        figures = {"losses": losses, "steps": steps, "skipped": skipped, "overflow": overflow, "wall_s": wall,
                   "dev_wer": epochs[-1]["dev_wer"] if epochs else None}
        dev = f", dev WER {100 * epochs[-1]['dev_wer']:.1f}%" if epochs else ""
        summary = (f"loss {losses[0]:.2f} -> {losses[-1]:.2f} over {steps} steps, {skipped} skipped, "
                   f"{overflow} fp16 overflows, {wall:.0f} s{dev}")
        return summary, figures, exp / "best.pt"

    def throughput(self, data: Path, which: str):
        from train_throughput import measure

        m = self.size.recipe_model if which == "librispeech_100" else self.size.demo_model
        batch_s = 600.0 if which == "librispeech_100" and not self.dry else 60.0
        r = measure(str(data / "train.jsonl"), hidden=m["hidden_size"], layers=m["num_layers"], n_mels=m["n_mels"],
                    device=self.device, precision="auto", batches=self.size.throughput_batches,
                    repeats=self.size.throughput_repeats, max_batch_seconds=batch_s, max_batch_size=64)
        r.pop("times")
        summary = (f"{m['num_layers']}x{m['hidden_size']}, {r['precision']}: full step {r['full']:.0f} s audio/s, "
                   f"bare nn.LSTM {r['bare']:.0f} s/s, ratio {100 * r['ratio']:.1f}%")
        return summary, r, None

    def decode(self, data: Path, ckpt: Path):
        import asr
        from asr.lm import build_arpa

        model = asr.load_model(ckpt, self.device)
        test = read_manifest(data / "test.jsonl")
        audio_s = sum(u.duration for u in test)
        lm = self.work / "lm.arpa"
        build_arpa(data / "train.jsonl", lm, order=3)
        figures = {}
        for name, opts in (("greedy", {}), ("beam", {"decoder": "beam", "lm": str(lm), "lm_weight": 1.5,
                                                      "word_score": -1.0})):
            t = time.perf_counter()
            ev = asr.evaluate(model, data / "test.jsonl", **opts)
            figures[name] = {"wer": ev.rates.wer, "rtf": (time.perf_counter() - t) / audio_s}
        long_path, refs = self._long_recording(test, self.size.long_minutes * 60)
        t = time.perf_counter()
        tr = model.transcribe(long_path)
        figures["long"] = {"minutes": tr.duration / 60, "rtf": (time.perf_counter() - t) / tr.duration,
                           "wer": _wer(" ".join(refs), tr.text), "words": len(tr.words)}
        summary = (f"greedy WER {100 * figures['greedy']['wer']:.1f}% RTF {figures['greedy']['rtf']:.4f}; "
                   f"beam+LM WER {100 * figures['beam']['wer']:.1f}% RTF {figures['beam']['rtf']:.4f}; "
                   f"{figures['long']['minutes']:.1f}-min file WER {100 * figures['long']['wer']:.1f}% "
                   f"RTF {figures['long']['rtf']:.4f}")
        return summary, figures, None

    def torchrun(self, data: Path):
        exp = self.work / "torchrun"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
               "-m", "asr.train", *self._train_args(data, exp, "auto", self.size.torchrun_steps)]
        proc, wall = _run_logged(cmd, exp.with_suffix(".log"))
        backend = re.search(r"rank 0 of 1 \((\w+)", proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise RuntimeError(f"torchrun exited {proc.returncode}: {_last_line(proc)}")
        want = "gloo" if self.dry else "nccl"
        if not backend or backend.group(1) != want:
            raise RuntimeError(f"expected a {want} process group; the log says {backend and backend.group(0)!r}")
        steps = max(json.loads(line)["step"] for line in (exp / "metrics.jsonl").open())
        return f"{steps} steps, process group {backend.group(1)}, {wall:.0f} s", {"steps": steps, "wall_s": wall}, None

    # ----------------------------------------------------------------- helpers

    def _train_args(self, data: Path, exp: Path, precision: str, steps: int) -> list[str]:
        return ["experiment=demo", f"exp_dir={exp}", f"data.train_manifest={data / 'train.jsonl'}",
                f"data.dev_manifest={data / 'dev.jsonl'}", f"max_steps={steps}", "epochs=1000", f"log_every={1 if self.dry else 10}",
                "checkpoint_every=0", "progress=false", f"device={self.device}", f"precision={precision}",
                f"data.num_workers={1 if self.dry else 6}", "seed=1", *self.size.train_overrides]

    def _long_recording(self, test, seconds: float) -> tuple[Path, list[str]]:
        """Test utterances joined with 0.5 s pauses until ``seconds`` (repeating them if needed)."""
        pause = np.zeros(8000, dtype=np.float32)
        parts, refs, total, i = [], [], 0.0, 0
        while total < seconds:
            u = test[i % len(test)]
            wave, rate = sf.read(u.audio_filepath, dtype="float32")
            parts += [wave, pause]
            refs.append(u.text)
            total += len(wave) / rate + 0.5
            i += 1
        path = self.work / "long.wav"
        sf.write(path, np.concatenate(parts), 16000, subtype="PCM_16")
        return path, refs

    def write(self) -> None:
        """The table so far into ``--out`` (rewritten after each part, so a run cut short keeps it)."""
        if not self.args.out:
            return
        out = Path(self.args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "gpu_check.md").write_text(f"{environment()}\n\n{self.table()}\n")
        (out / "gpu_check.json").write_text(json.dumps(
            {"environment": environment(), "dry_run": self.dry, "parts": [r.__dict__ for r in self.rows]},
            indent=1, default=str))

    def table(self) -> str:
        lines = ["| part | result | seconds | figures |", "|---|---|---|---|"]
        for r in self.rows:
            lines.append(f"| {r.part} | {'ok' if r.ok else '**FAIL**'} | {r.seconds:.0f} | {r.summary} |")
        return "\n".join(lines)


def synthesise_demo(out_dir: Path, n_train: int, n_dev: int, n_test: int, workers: int, seed: int = 0) -> None:
    """The demo corpus (asr.corpora.demo: same sentences and voice split), rendered by
    ``workers`` processes."""
    from asr.corpora.demo import DEV_VARIANTS, TEST_VARIANTS, sentence
    from asr.synth import VARIANTS, random_voice

    rng = np.random.default_rng(seed)
    held_out = set(DEV_VARIANTS) | set(TEST_VARIANTS)
    splits = {"train": (n_train, [v for v in VARIANTS if v not in held_out]),
              "dev": (n_dev, DEV_VARIANTS), "test": (n_test, TEST_VARIANTS)}
    # spawn, not fork: the parent has CUDA and thread pools running. One OpenMP thread per
    # worker: 16 workers each starting 16 threads (the resampling in render) is the likely
    # reason the synthesis stalled on the first GPU check (not verified).
    saved = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the spawned workers from their start
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                  initializer=_one_thread)
    try:
        for split, (n, variants) in splits.items():
            items = [(f"{split}-{i:05d}", sentence(rng), random_voice(rng, variants)) for i in range(n)]
            chunks = [items[k::workers] for k in range(workers) if items[k::workers]]
            jobs = [pool.submit(_write_chunk, out_dir / "wav" / split, chunk, seed + 100 * k)
                    for k, chunk in enumerate(chunks)]
            # A stalled synthesis is an error, not a silent hang of the whole check.
            utts = sorted((u for job in jobs for u in job.result(timeout=300)), key=lambda u: u.id)
            write_manifest(out_dir / f"{split}.jsonl", utts)
            print(f"{split}: {len(utts)} utterances synthesised", flush=True)
    except BaseException:
        for process in list(getattr(pool, "_processes", {}).values()):  # do not wait for stalled workers
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown()
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def _one_thread() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def _write_chunk(out_dir: Path, items, seed: int):
    from asr.synth import write_corpus

    return write_corpus(out_dir, items, seed=seed)


@contextlib.contextmanager
def _patched(module, name: str, value):
    saved = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, saved)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _zeros(x: torch.Tensor) -> float:
    return (x == 0).float().mean().item()


def _wer(reference: str, hypothesis: str) -> float:
    from asr.metrics import error_rates

    return error_rates([reference], [hypothesis]).wer


def _run_logged(cmd: list[str], log: Path, timeout: float = 300) -> tuple[subprocess.CompletedProcess, float]:
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=timeout)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(f"$ {' '.join(cmd)}\n{proc.stdout}\n{proc.stderr}")
    if proc.returncode:
        print(f"$ {' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc, time.perf_counter() - t


def _last_line(proc: subprocess.CompletedProcess) -> str:
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return lines[-1] if lines else "(no output)"


def environment() -> str:
    parts = [f"torch {torch.__version__}"]
    if torch.cuda.is_available():
        parts += [torch.cuda.get_device_name(0), f"CUDA {torch.version.cuda}",
                  f"cuDNN {torch.backends.cudnn.version()}"]
    else:
        parts.append("no GPU")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="the same code paths on the CPU, tiny sizes")
    p.add_argument("--work", help="working folder (default: a temporary one, removed at the end)")
    p.add_argument("--out", help="also write gpu_check.md and gpu_check.json here")
    p.add_argument("--data", help="demo data made earlier (train/dev/test.jsonl, e.g. exp/demo/data from make demo) "
                                  "instead of synthesising it")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: tests,gradients,train,throughput,"
                                              "decode,torchrun")
    args = p.parse_args(argv)
    if not args.dry_run and not torch.cuda.is_available():
        from asr.utils import cuda_problem

        print(f"error: no usable CUDA GPU ({cuda_problem()}); bench/gpu_check.py --dry-run runs on the CPU",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        args.work = args.work or tmp
        Path(args.work).mkdir(parents=True, exist_ok=True)
        return run_check(args)


def run_check(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    if args.dry_run:
        torch.set_num_threads(1)
    check = Check(args)
    skip = set(filter(None, args.skip.split(",")))
    print(environment(), flush=True)
    if "tests" not in skip:
        check.run("cuda tests", check.cuda_tests)
    if "gradients" not in skip:
        check.run("gradients", check.gradients)
        check.run("lstm kernels", check.lstm_kernels)
    data = check.run("demo data", check.prepare_data)
    ckpt = None
    if data and "train" not in skip:
        for precision in ("auto", "bf16", "fp32"):
            path = check.run(f"train {precision}", check.train, data, precision)
            ckpt = ckpt or path
    if data and "throughput" not in skip:
        for which in ("demo", "librispeech_100"):
            check.run(f"throughput {which}", check.throughput, data, which)
    if ckpt and "decode" not in skip:
        check.run("decode", check.decode, data, ckpt)
    if data and "torchrun" not in skip:
        check.run("torchrun", check.torchrun, data)
    print(f"\n{environment()}\n\n{check.table()}")
    failed = [r.part for r in check.rows if not r.ok]
    if failed:
        print(f"error: {len(failed)} part(s) failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
