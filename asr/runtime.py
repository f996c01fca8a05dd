"""What a long training run needs besides training: seeding and saving every RNG's state
(so a resumed run draws what an uninterrupted one would), stop signals that let the loop
checkpoint before it exits, and the metrics log (``metrics.jsonl`` and TensorBoard)."""

from __future__ import annotations

import json
import logging
import math
import random
import signal
import threading
from pathlib import Path

import numpy as np
import torch

from asr.utils import atomic_open

log = logging.getLogger("asr.train")


class StopSignals:
    """While active, SIGTERM and SIGINT only set ``signum``: the training loop finishes the
    step, writes ``last.pt`` and stops. A second signal interrupts at once."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict = {}

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGTERM, signal.SIGINT)}
        return self

    def _handle(self, signum: int, _frame) -> None:
        if self.signum:
            raise KeyboardInterrupt
        self.signum = signum
        log.warning("%s received: writing last.pt after this step (again to stop at once)",
                    signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def ignore_sigint(_worker_id: int) -> None:
    """Loader workers leave Ctrl-C to the main process, which checkpoints before stopping."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
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
        # One state per GPU the saving process saw; a machine with fewer GPUs restores those
        # it has (each rank draws on its own device only).
        for index, cuda_state in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)


class MetricsLog:
    """Appends JSON lines to ``metrics.jsonl`` and scalars to TensorBoard."""

    def __init__(self, exp_dir: Path, resume_step: int | None = None):
        path = exp_dir / "metrics.jsonl"
        if resume_step is not None and path.is_file():  # drop records a killed run wrote after its checkpoint
            lines = path.read_text(encoding="utf-8").splitlines()
            with atomic_open(path) as f:
                f.writelines(line + "\n" for line in lines if line.strip() and _step_of(line) <= resume_step)
        self.file = open(path, "a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(exp_dir / "tensorboard"),
                                    purge_step=resume_step + 1 if resume_step is not None else None)
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


def _step_of(line: str) -> float:
    try:
        return json.loads(line).get("step", 0)
    except (json.JSONDecodeError, AttributeError):
        return math.inf  # a torn last line: dropped
