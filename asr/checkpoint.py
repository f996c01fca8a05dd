"""Self-describing checkpoints, written atomically and loaded without unpickling code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
``format``, ``feature_config``, ``model_config``, ``vocab`` (the characters after the
blank; with subword units also ``subword_model``, the sentencepiece model's bytes as a
uint8 tensor, :mod:`asr.subword`) and ``state_dict`` always; training checkpoints add
``optimizer``, ``scheduler``, ``scaler``, ``rng``, ``progress`` and ``config``. Loading
uses ``weights_only=True``.

``checksum`` (BLAKE2b over every tensor's bytes and every other value) is written with the
state and verified on loading, so a truncated file *and* a flipped bit inside tensor data
(which ``torch.load`` alone accepts silently) are reported as a corrupt checkpoint.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from asr.utils import UserError, atomic_open

FORMAT = "asr-checkpoint/1"
REQUIRED = ("format", "feature_config", "model_config", "vocab", "state_dict")


class CheckpointError(UserError):
    """A checkpoint that is missing, truncated, corrupt or not one of ours."""


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """Write ``state`` to ``path`` through a temporary file, fsync and rename: a crash
    leaves the previous file intact."""
    state = {"format": FORMAT, **state}
    state.pop("checksum", None)
    with atomic_open(path, "wb") as f:
        torch.save({**state, "checksum": checksum(state)}, f)


def checksum(state) -> str:
    """BLAKE2b digest of a nested dict/list of tensors and plain values (key order kept)."""
    h = hashlib.blake2b(digest_size=16)

    def visit(x) -> None:
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            if t.numel():
                h.update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(x, dict):
            h.update(b"{")
            for k, v in x.items():
                h.update(repr(k).encode())
                visit(v)
            h.update(b"}")
        elif isinstance(x, (list, tuple)):
            h.update(b"[")
            for v in x:
                visit(v)
            h.update(b"]")
        else:
            h.update(repr(x).encode())

    visit(state)
    return h.hexdigest()


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Load a checkpoint safely (``weights_only=True``) and check that it describes itself."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; pass a .pt file written by asr-train "
                              "(e.g. exp/demo/best.pt)")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for bad files
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: truncated or corrupt checkpoint ({reason}); "
                              "use another one (last.pt, best.pt or a periodic checkpoint)") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an asr checkpoint (expected format {FORMAT!r}); "
                              "pass a file written by asr-train")
    if "checksum" not in state:
        raise CheckpointError(f"{path}: checkpoint has no checksum, so its integrity cannot be checked; "
                              "use a file written by asr-train")
    if checksum({k: v for k, v in state.items() if k != "checksum"}) != state["checksum"]:
        raise CheckpointError(f"{path}: corrupt checkpoint (checksum mismatch: the file changed after it was "
                              "written); use another one (last.pt, best.pt or a periodic checkpoint)")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}; it was not written by asr-train")
    return state


# Periodic and per-epoch checkpoints of a training run live in ``<exp_dir>/checkpoints/``:
# ``step-00001000.pt`` (every ``checkpoint_every`` steps; the full training state) and
# ``epoch-003.pt`` (weights only, for averaging). ``last.pt`` is always the newest state.

def periodic_path(exp_dir: str | os.PathLike, step: int) -> Path:
    return Path(exp_dir) / "checkpoints" / f"step-{step:08d}.pt"


def epoch_path(exp_dir: str | os.PathLike, epoch: int) -> Path:
    return Path(exp_dir) / "checkpoints" / f"epoch-{epoch:03d}.pt"


def list_checkpoints(exp_dir: str | os.PathLike, kind: str = "step") -> list[Path]:
    """``kind`` (``step`` or ``epoch``) checkpoints in ``exp_dir/checkpoints``, oldest first."""
    folder = Path(exp_dir) / "checkpoints"
    return sorted(folder.glob(f"{kind}-*.pt")) if folder.is_dir() else []


def prune_checkpoints(exp_dir: str | os.PathLike, keep_last_n: int, kind: str = "step") -> list[Path]:
    """Delete all but the newest ``keep_last_n`` checkpoints of ``kind`` (0 keeps all);
    returns the deleted paths."""
    if keep_last_n <= 0:
        return []
    old = list_checkpoints(exp_dir, kind)[:-keep_last_n]
    for p in old:
        p.unlink(missing_ok=True)
    return old


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Make ``dst`` a complete copy of ``src`` atomically: a hard link (no second write)
    where the file system allows it, else a copy; then rename over ``dst``."""
    import shutil

    dst = Path(dst)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def load_latest(exp_dir: str | os.PathLike, map_location: str | torch.device = "cpu",
                warn=None) -> tuple[Path, dict] | None:
    """The newest loadable training state in ``exp_dir`` (``last.pt`` or a periodic
    checkpoint, whichever has the higher step). A corrupt candidate is reported through
    ``warn(message)`` and skipped, never deleted. ``None`` when there is nothing to resume from."""
    best: tuple[Path, dict] | None = None
    for path in [Path(exp_dir) / "last.pt"] + list_checkpoints(exp_dir, "step")[::-1]:
        if not path.is_file():
            continue
        if best is not None and path.name.startswith("step-") \
                and int(path.stem.split("-")[1]) <= best[1]["progress"]["step"]:
            break  # periodic checkpoints are newest first: none of the rest is newer
        try:
            state = load_checkpoint(path, map_location)
        except CheckpointError as e:
            if warn is not None:
                warn(f"{e}; trying an older checkpoint")
            continue
        if "progress" not in state:
            if warn is not None:
                warn(f"{path}: holds no training state (progress); trying an older checkpoint")
            continue
        if best is None or state["progress"]["step"] > best[1]["progress"]["step"]:
            best = (path, state)
        if path.name.startswith("step-"):
            break
    return best
