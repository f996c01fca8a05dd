"""Small shared helpers: atomic file writes and one-line user errors."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import IO, Iterator


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr, no traceback."""


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over
    ``path``, so readers see either the old file or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def one_line(error: BaseException) -> str:
    """The message of a user error as one line. An error raised in a DataLoader worker
    comes back with the worker's traceback in its message; keep only the original message."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last
    return " ".join(text.split("\n"))


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn a :class:`UserError` into one line on stderr and exit 2."""
    try:
        return main(argv) or 0
    except UserError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def resolve_device(name: str = "auto"):
    """``auto`` picks CUDA when present; asking for CUDA without it is a user error."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device is available here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r} not understood; expected cpu, cuda or cuda:N") from None


def autocast_dtype(device, precision: str = "auto"):
    """The mixed-precision dtype for ``device``, or None for float32. ``auto`` is bf16 on a
    CUDA device that supports it, fp16 on an older one, float32 on the CPU."""
    import torch

    if precision not in PRECISIONS:
        raise UserError(f"precision={precision!r}; expected one of {PRECISIONS}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16
