"""``torch.distributed`` helpers for training: start-up from ``torchrun``, rank checks,
agreement between ranks and metric reduction.

Launch the ordinary ``asr-train`` command under ``torchrun`` and every rank takes its
place from the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...)::

    torchrun --standalone --nproc-per-node 4 -m asr.train experiment=demo

NCCL is used on CUDA, gloo on the CPU. Without ``torchrun`` (no ``WORLD_SIZE`` in the
environment) everything here degrades to the single-process case and no process group
is created; ``torchrun --nproc-per-node 1`` makes a group of one (its collectives run).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from asr.utils import UserError, flatten_dict


class DistributedError(UserError):
    """Ranks that cannot work together: a different config, vocabulary or data."""


@dataclass(frozen=True)
class Context:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True under ``torchrun`` (which sets ``TORCHELASTIC_RUN_ID``), one process included, or
    with a ``WORLD_SIZE`` above 1 from another launcher."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device_name: str = "auto", timeout_s: float = 1800.0) -> tuple[Context, torch.device]:
    """Join the process group that ``torchrun`` describes in the environment.

    Returns the rank context and this rank's device: ``cuda:LOCAL_RANK`` when CUDA is
    used, else the CPU. Single-process runs return ``Context()`` and the resolved device.
    """
    from asr.utils import resolve_device

    device = resolve_device(device_name)
    if not launched_by_torchrun():
        return Context(), device
    ctx = Context(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    if device.type == "cuda":
        if ctx.local_rank >= torch.cuda.device_count():
            raise DistributedError(f"LOCAL_RANK {ctx.local_rank} but only {torch.cuda.device_count()} CUDA "
                                   "device(s) on this node; pass --nproc-per-node at most the GPU count")
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s),
                                **({"device_id": device} if device.type == "cuda" else {}))
    return ctx, device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def all_gather_objects(obj) -> list:
    """``obj`` from every rank, in rank order (``[obj]`` without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj, src: int = 0):
    """``obj`` as rank ``src`` has it, on every rank (pickled; tensors arrive on the CPU)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (returns it unchanged without a process group). On NCCL the
    tensor must live on this rank's CUDA device."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def all_reduce_mean(values: torch.Tensor) -> torch.Tensor:
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    return all_reduce_sum(values) / world


def fingerprint(obj) -> str:
    """A short hash of a JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_agreement(config: dict, vocab: Sequence[str], data: dict | None = None) -> None:
    """Raise :class:`DistributedError` on every rank unless all ranks have the same config,
    vocabulary and data fingerprint (``data``: e.g. the training manifest's ids and durations).

    The message names the first differing key and the ranks that differ, so a node started
    with other overrides, another checkout or another copy of the data is found at once.
    """
    mine = {"config": flatten_dict(config), "vocab": "".join(vocab), "data": data or {}}
    everyone = all_gather_objects(mine)
    ref = everyone[0]
    for what in ("vocab", "config", "data"):
        for rank, other in enumerate(everyone[1:], 1):
            if other[what] == ref[what]:
                continue
            if what == "vocab":
                raise DistributedError(f"rank {rank} has vocabulary {other['vocab']!r} but rank 0 has "
                                       f"{ref['vocab']!r}; start every rank with the same data.chars")
            keys = sorted(set(ref[what]) | set(other[what]))
            key = next(k for k in keys if ref[what].get(k) != other[what].get(k))
            fix = ("launch every rank with the same command-line overrides and checkout" if what == "config"
                   else "give every node an identical copy of the manifests and audio")
            raise DistributedError(f"ranks disagree on {what}: {key} is {other[what].get(key)!r} on rank {rank} "
                                   f"but {ref[what].get(key)!r} on rank 0; {fix}")
