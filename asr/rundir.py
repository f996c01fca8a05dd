"""A training run owns its ``exp_dir``.

:func:`claim` is called before a run writes anything there:

- an exclusive ``flock`` on ``exp_dir/.lock`` (the kernel releases it when the process
  ends, however it ends) refuses a second run on the same folder, naming the holder's PID;
- a folder that already holds a run (any of :data:`RUN_FILES`) is refused unless the new
  run continues it (``resume=true``) or replaces it (``overwrite=true``, which moves the
  earlier run's files into ``exp_dir/replaced-<time>/``: nothing is deleted).

Other files in ``exp_dir`` (a recipe's ``data/``, for instance) are not the run's and are
left alone.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from asr.utils import UserError

# What a training run writes into its exp_dir.
RUN_FILES = ("config.yaml", "metrics.jsonl", "train.log", "last.pt", "best.pt", "averaged.pt", "checkpoints",
             "tensorboard", "curves.png")


class RunDir:
    """A claimed ``exp_dir``; ``release()`` (or leaving the ``with`` block) frees it."""

    def __init__(self, path: Path, lock_fd: int, replaced: Path | None):
        self.path, self._fd, self.replaced = path, lock_fd, replaced

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "RunDir":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(exp_dir: str | os.PathLike, resume: bool = False, overwrite: bool = False) -> RunDir:
    """Lock ``exp_dir`` for this process and check that this run may write there."""
    path = Path(exp_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise UserError(f"exp_dir={path}: cannot create it or its lock file ({e.strerror}); "
                        "choose a writable folder with exp_dir=...") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(f"exp_dir={path} is in use by another training run (PID {holder}); wait for it to end, "
                        "or give this run its own exp_dir=...") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        used = [name for name in RUN_FILES if (path / name).exists()]
        replaced = None
        if used and not resume:
            if not overwrite:
                raise UserError(f"exp_dir={path} already holds a run ({', '.join(used)}); continue it with "
                                "resume=true, replace it with overwrite=true (the earlier run is moved into "
                                f"{path}/replaced-<time>/, not deleted), or choose another exp_dir=...")
            replaced = _move_aside(path, used)
    except BaseException:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
        raise
    return RunDir(path, fd, replaced)


def _move_aside(path: Path, names: list[str]) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path / f"replaced-{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = path / f"replaced-{stamp}-{n}"
    try:
        target.mkdir()
        for name in names:
            os.replace(path / name, target / name)
    except OSError as e:
        raise UserError(f"exp_dir={path}: could not move the earlier run into {target} ({e.strerror}); "
                        "move or delete it by hand, or choose another exp_dir=...") from None
    return target
