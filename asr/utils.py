"""Small shared helpers: atomic file writes and one-line user errors."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import tempfile
import warnings
from pathlib import Path
from typing import IO, Iterator


class UserError(Exception):
    """Bad input from the user: reported as one line on stderr, no traceback."""


# Failures of the environment, not of the program: reported as one line.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM, errno.EIO,
                      errno.ENOTDIR, errno.EISDIR}


class WriteError(UserError, OSError):
    """A file could not be written (full disk, read-only or missing folder); the previous
    file at that path, if any, is intact. Both a :class:`UserError` and an ``OSError``."""

    def __str__(self) -> str:
        return str(self.strerror)


def environment_message(error: OSError) -> str | None:
    """One line for an ``OSError`` caused by the environment (full disk, permissions, a
    path below a regular file), naming the file and a fix; None for other errors."""
    if error.errno not in ENVIRONMENT_ERRNOS:
        return None
    name = error.filename if error.filename is not None else "a file"
    fix = {errno.ENOSPC: "free disk space", errno.EDQUOT: "free space within your quota",
           errno.EROFS: "choose a writable folder", errno.ENOTDIR: "a folder on that path is a regular file; "
           "choose another path"}.get(error.errno, "check the path and its permissions")
    return f"{name}: {error.strerror or error}; {fix}, then run again"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success fsync it and rename it over
    ``path``, so readers see either the old file or the complete new one."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise WriteError(e.errno, f"{path}: cannot write here ({e.strerror}); choose a writable folder "
                         "(a folder on the path may be a regular file, read-only or full)") from None
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and not isinstance(e, UserError) and e.errno in ENVIRONMENT_ERRNOS:
            raise WriteError(e.errno, f"{path}: could not write it ({e.strerror}); the previous file is intact; "
                             "free disk space or make the folder writable, then run again") from None
        raise


def flatten_dict(d: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten_dict(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def check_writable(path: str | os.PathLike, what: str = "output") -> None:
    """Raise a one-line :class:`UserError` now if ``path`` could not be written later (a
    folder on the way is a regular file, or the nearest existing folder is read-only), so
    a long computation is not lost at its last step."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path}: is a folder; name a file")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {path}: {parent} is a regular file, not a folder; choose another path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{what} {path}: the folder {parent} is not writable; choose another path")


def text_lines(path: str | os.PathLike, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file (a byte-order mark is dropped), without line ends.
    Other encodings and binary files raise a one-line :class:`UserError` naming the file,
    the line and a fix; a missing or unreadable file raises ``OSError`` as ``open`` does."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 (byte 0x{data[e.start]:02x}); a {what} must be UTF-8 text: "
                        f"convert it, e.g. iconv -f latin1 -t utf-8 {path} > utf8-copy, and use the copy") from None
    return text.splitlines()


def escape_controls(text: str) -> str:
    """Newlines, carriage returns and tabs as ``\\n``, ``\\r``, ``\\t``, so a file name that holds
    them cannot break a line-based output (txt, tsv) or an error line."""
    return text.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")


def one_line(error: BaseException) -> str:
    """The message of a user error as one line. An error raised in a DataLoader worker
    comes back with the worker's traceback in its message; keep only the original message."""
    text = str(error).strip()
    if "Original Traceback" in text:
        last = text.splitlines()[-1]
        prefix = f"{type(error).__module__}.{type(error).__qualname__}: "
        text = last[len(prefix):] if last.startswith(prefix) else last
    return " ".join(text.split("\n"))


class HelpFormatter(argparse.HelpFormatter):
    """``--help`` shows every option's default (unless its help text already says it)."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if (action.option_strings and "default" not in text and not action.required
                and action.default is not None and action.default is not False
                and action.default != argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def progress(items, total: int, what: str):
    """``items`` passed through a tqdm bar on stderr when stderr is a terminal (long
    preparation steps), untouched otherwise."""
    if not sys.stderr.isatty():
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=what, unit="file", file=sys.stderr, dynamic_ncols=True)


def run_cli(main, argv=None) -> int:
    """Run ``main(argv)``; turn a :class:`UserError` into one line on stderr and exit 2."""
    with warnings.catch_warnings():  # a warning is one line too
        warnings.simplefilter("default")
        warnings.showwarning = lambda message, *args, **kwargs: print(f"warning: {message}", file=sys.stderr)
        return _run(main, argv)


def _run(main, argv) -> int:
    try:
        return main(argv) or 0
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush cannot raise again
        return 128 + 13  # SIGPIPE
    except UserError as e:
        print(f"error: {escape_controls(one_line(e))}", file=sys.stderr)
        return 2
    except OSError as e:
        message = environment_message(e)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
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
    if name.startswith("cuda"):
        problem = cuda_problem()
        if problem:
            raise UserError(f"device {name}: {problem}")
    try:
        return torch.device(name)
    except RuntimeError:
        raise UserError(f"device {name!r} not understood; expected cpu, cuda or cuda:N") from None


def cuda_problem() -> str | None:
    """Why CUDA cannot be used here (build, driver or GPU, and the fix), or None when it can."""
    import torch

    if torch.version.cuda is None:
        return (f"this torch ({torch.__version__}) is a CPU-only build; install a CUDA build of torch and "
                "torchaudio from the same index (README: installing on a GPU machine), or use device=cpu")
    if not torch.cuda.is_available():
        return (f"torch {torch.__version__} is built for CUDA {torch.version.cuda} but finds no usable GPU: check "
                f"nvidia-smi, and that the NVIDIA driver supports CUDA {torch.version.cuda} (CUDA 13 needs driver "
                "580 or newer); or use device=cpu")
    major, minor = torch.cuda.get_device_capability()
    built = sorted(int(a[3:]) for a in torch.cuda.get_arch_list() if a.startswith("sm_") and a[3:].isdigit())
    if built and 10 * major + minor < built[0]:
        return (f"the GPU's compute capability {major}.{minor} is below what this torch build supports "
                f"(sm_{built[0]} and newer); install a torch build for this GPU, or use device=cpu")
    return None


def autocast_dtype(device, precision: str = "auto"):
    """The mixed-precision dtype for ``device``, or None for float32.

    ``auto`` is float32 on the CPU; on CUDA it is bf16 where the GPU has it natively
    (Ampere and newer), else fp16 (training adds the grad scaler for fp16). Under bf16 the
    recurrent layers run in float32 (:func:`asr.models.rnn.rnn_precision`: cuDNN would run them
    in fp16 without a loss scale and flush most of their gradients); measured on an H200
    that is also the fastest of the four ways (README, "Mixed precision"). ``bf16`` asked for
    on a GPU that would only emulate it (T4-class) is refused.
    """
    import torch

    if precision not in PRECISIONS:
        raise UserError(f"precision={precision!r}; expected one of {PRECISIONS}")
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    native_bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported(including_emulation=False)
    if precision == "auto":
        return torch.bfloat16 if native_bf16 else torch.float16
    if precision == "bf16" and not native_bf16:
        raise UserError(f"precision=bf16 but {torch.cuda.get_device_name(device)} has no native bf16 "
                        "(it would be emulated, slowly); use precision=fp16 or precision=auto")
    return torch.bfloat16 if precision == "bf16" else torch.float16
