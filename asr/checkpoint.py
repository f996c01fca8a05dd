"""Self-describing checkpoints, written atomically and loaded without unpickling code.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts:
``format``, ``feature_config``, ``model_config``, ``vocab`` (the characters after the
blank) and ``state_dict`` always; training checkpoints add ``optimizer``, ``scheduler``,
``scaler``, ``rng``, ``progress`` and ``config``. Loading uses ``weights_only=True``.
"""

from __future__ import annotations

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
    with atomic_open(path, "wb") as f:
        torch.save({"format": FORMAT, **state}, f)


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
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}; it was not written by asr-train")
    return state
