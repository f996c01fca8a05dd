"""Shared helpers: atomic writes that keep the previous file, UTF-8 text reading, early
output checks, one-line errors and warnings from run_cli."""

import errno
import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest

from asr.utils import UserError, WriteError, atomic_open, check_writable, run_cli, text_lines


def test_atomic_open_replaces_only_on_success_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with atomic_open(path) as f:
        f.write("new")
        assert path.read_text() == "old"  # readers see the old file until the rename
    assert path.read_text() == "new"
    with pytest.raises(RuntimeError):
        with atomic_open(path) as f:
            f.write("half")
            raise RuntimeError("crash")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_a_full_disk_is_a_write_error_naming_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "report.json"
    path.write_text("previous")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError) as info:
        with atomic_open(path) as f:
            f.write("x" * 1000)
    assert isinstance(info.value, OSError) and isinstance(info.value, UserError)
    assert str(info.value).startswith(f"{path}: could not write it (No space left on device); the previous file")
    assert path.read_text() == "previous" and os.listdir(tmp_path) == ["report.json"]


def test_writing_below_a_regular_file_is_a_write_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match="cannot write here"):
        with atomic_open(tmp_path / "file" / "out.txt") as f:
            f.write("x")


def test_check_writable_refuses_early(tmp_path):
    (tmp_path / "file").write_text("x")
    check_writable(tmp_path / "new" / "deeper" / "out.json")  # folders to be made: fine
    with pytest.raises(UserError, match="is a regular file, not a folder"):
        check_writable(tmp_path / "file" / "out.json", "--report")
    with pytest.raises(UserError, match="is a folder; name a file"):
        check_writable(tmp_path)
    if os.geteuid() != 0:  # root may write anywhere
        (tmp_path / "ro").mkdir(mode=0o500)
        with pytest.raises(UserError, match="not writable"):
            check_writable(tmp_path / "ro" / "out.json")


def test_text_lines_drops_a_byte_order_mark_and_names_the_line_of_bad_bytes(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffhello\nworld\n".encode())
    assert text_lines(path) == ["hello", "world"]
    path.write_bytes("\ncaf\xe9\n".encode("latin-1"))  # an empty first line counts
    with pytest.raises(UserError, match=r"t.txt:2: not UTF-8"):
        text_lines(path)
    path.write_bytes("one\ntwo\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match=r"t.txt:3: not UTF-8 \(byte 0xe9\); a lexicon must be UTF-8 text: .*iconv"):
        text_lines(path, "lexicon")


def test_run_cli_gives_one_line_for_user_errors_environment_errors_and_warnings(capsys):
    def user(argv):
        raise UserError("bad.wav: not audio")

    def disk(argv):
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out.jsonl")

    def bug(argv):
        raise OSError(errno.EBADF, "Bad file descriptor")

    def warns(argv):
        warnings.warn("a.wav: truncated")
        return 0

    assert run_cli(user) == 2 and capsys.readouterr().err == "error: bad.wav: not audio\n"
    assert run_cli(disk) == 2
    assert capsys.readouterr().err == ("error: /data/out.jsonl: No space left on device; free disk space, "
                                       "then run again\n")
    with pytest.raises(OSError):  # a genuine bug keeps its traceback
        run_cli(bug)
    assert run_cli(warns) == 0 and capsys.readouterr().err == "warning: a.wav: truncated\n"


def _parsers():
    import argparse
    import importlib

    for name in ("transcribe", "evaluation", "lm", "prepare", "export", "average"):
        parser = importlib.import_module(f"asr.{name}").build_parser()
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from ((f"{name} {sub}", p) for sub, p in action.choices.items())


def test_every_option_of_every_command_has_help_that_shows_its_default(monkeypatch):
    import argparse

    monkeypatch.setenv("COLUMNS", "10000")  # no line wrapping inside a default

    for name, parser in _parsers():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            assert action.help, (name, action.option_strings or action.dest)
            if action.option_strings and action.default is not None and action.default is not False \
                    and not action.required:
                shown = " ".join(str(action.default).split())
                assert "default" in action.help or f"(default: {shown})" in text, \
                    (name, action.option_strings)


def test_asking_for_cuda_without_a_usable_gpu_says_why(monkeypatch):
    import torch

    from asr.utils import cuda_problem, resolve_device

    monkeypatch.setattr(torch.version, "cuda", None)
    assert "CPU-only build" in cuda_problem()
    monkeypatch.setattr(torch.version, "cuda", "13.0")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "built for CUDA 13.0 but finds no usable GPU" in cuda_problem() and "driver" in cuda_problem()
    with pytest.raises(UserError, match="device cuda:1: torch .* finds no usable GPU"):
        resolve_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (6, 1))
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_75", "sm_80", "sm_90"])
    assert "compute capability 6.1 is below what this torch build supports (sm_75" in cuda_problem()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    assert cuda_problem() is None
    monkeypatch.setattr(torch.cuda, "get_arch_list", lambda: ["sm_90a", "compute_75", "sm_80", "sm_75"])
    for capability, usable in (((7, 5), True), ((7, 0), False), ((8, 0), True)):  # the oldest built is 7.5
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, c=capability: c)
        assert (cuda_problem() is None) == usable, capability
    assert resolve_device("cpu").type == "cpu"


def test_the_gpu_recipes_refuse_to_start_on_the_cpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    for experiment in ("librispeech_100", "librispeech_960"):
        done = subprocess.run([sys.executable, "-m", "asr.train", f"experiment={experiment}",
                               f"exp_dir={tmp_path / experiment}"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("error: device cuda: torch") and "device=cpu" in done.stderr
        assert not (tmp_path / experiment / "config.yaml").exists()


def _in_small_tmpfs(tmp_path, script: str, size: str = "64k") -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a private mount namespace where ``tmp_path/disk`` is a tmpfs of
    ``size``: a real full disk, not an injected error. Skips where namespaces are refused."""
    if not shutil.which("unshare") or subprocess.run(["unshare", "-rm", "true"], capture_output=True).returncode:
        pytest.skip("no user/mount namespaces here (unshare -rm refused): cannot mount a small tmpfs")
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = f"mount -t tmpfs -o size={size} tmpfs {disk} && cd {disk} && "
    return subprocess.run(["unshare", "-rm", "sh", "-c", mount + script], capture_output=True, text=True,
                          env={**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"})


def test_a_really_full_disk_keeps_the_previous_file_and_is_one_line(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")  # the manifest's lines only need an existing audio path
    manifest = tmp_path / "all.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "x" * 80,
                                            "speaker": f"s{i % 20}", "id": f"u{i}"}) + "\n" for i in range(2000)))
    # fill the 64 KiB disk but for a few KiB, keep a previous train.jsonl, then split into it
    run = _in_small_tmpfs(tmp_path, (
        "echo previous > train.jsonl && "
        f"{sys.executable} -c \"open('filler', 'wb').write(bytes(60 * 1024))\" && "
        f"asr-prepare split {manifest} --train train.jsonl --dev dev.jsonl --dev-speakers 2 --test-speakers 0; "
        "echo rc=$?; cat train.jsonl; ls -A"))
    lines = run.stdout.splitlines()
    assert "rc=2" in lines, run.stdout + run.stderr
    assert lines[lines.index("rc=2") + 1] == "previous"  # the previous file is intact
    assert sorted(lines[lines.index("rc=2") + 2:]) == ["filler", "train.jsonl"]  # no temporary left behind
    assert "Traceback" not in run.stderr and len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("error: ") and "train.jsonl" in run.stderr and "No space left" in run.stderr


def test_small_helpers_flatten_escape_and_keep_the_original_message():
    from asr.utils import escape_controls, flatten_dict, one_line, progress

    assert flatten_dict({"a": {"b": 1, "c": {"d": None}}, "e": [1]}) == {"a.b": 1, "a.c.d": None, "e": [1]}
    assert escape_controls("a\nb\rc\td") == "a\\nb\\rc\\td"
    worker = UserError("Caught UserError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                       "last):\n  File \"x.py\", line 1\nasr.utils.UserError: m.jsonl:3: no such file")
    assert one_line(worker) == "m.jsonl:3: no such file"
    assert one_line(UserError("two\nlines")) == "two lines"
    other = UserError("Original Traceback (most recent call last):\nValueError: not ours")
    assert one_line(other) == "ValueError: not ours"  # another exception's line is kept whole
    items = [1, 2]
    assert progress(items, 2, "files") is items  # stderr is not a terminal under pytest


def test_run_cli_exit_codes_for_a_closed_pipe_and_ctrl_c(capsys, monkeypatch):
    def closed(argv):
        raise BrokenPipeError

    def interrupted(argv):
        raise KeyboardInterrupt

    dups = []
    monkeypatch.setattr(os, "dup2", lambda fd, to: dups.append((os.readlink(f"/proc/self/fd/{fd}"), to)))
    with open(os.devnull, "w") as out:  # (dup2 recorded, not done: pytest keeps its own stdout)
        monkeypatch.setattr(sys, "stdout", out)
        assert run_cli(closed) == 141 and dups == [("/dev/null", out.fileno())]  # stdout sent to /dev/null
    assert capsys.readouterr().err == ""
    assert run_cli(interrupted) == 130 and capsys.readouterr().err == "interrupted\n"
    assert run_cli(lambda argv: None) == 0 and run_cli(lambda argv: 3) == 3


def test_atomic_open_gives_the_file_the_usual_mode(tmp_path):
    old = os.umask(0o022)
    try:
        with atomic_open(tmp_path / "out.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.txt").stat().st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_devices_and_precisions(monkeypatch):
    import torch

    from asr.utils import autocast_dtype, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(UserError, match="device 'tpu' not understood"):
        resolve_device("tpu")
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu) is None and autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16 and autocast_dtype(cpu, "fp16") is torch.float16
    with pytest.raises(UserError, match=r"precision='fp8'; expected one of \('auto', 'fp32', 'bf16', 'fp16'\)"):
        autocast_dtype(cpu, "fp8")
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)  # Ampere+
    assert autocast_dtype(cuda) is torch.bfloat16 and autocast_dtype(cuda, "fp16") is torch.float16
    # a T4 "supports" bf16 only through emulation, which torch counts unless told not to
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation is True)
    assert autocast_dtype(cuda) is torch.float16
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "Tesla T4" if d == cuda else "?")
    with pytest.raises(UserError, match="precision=bf16 but Tesla T4 has no native bf16"):
        autocast_dtype(cuda, "bf16")


@pytest.mark.parametrize("code,fix", [(errno.ENOSPC, "free disk space"), (errno.EDQUOT, "free space within your quota"),
                                      (errno.EROFS, "choose a writable folder"),
                                      (errno.ENOTDIR, "a folder on that path is a regular file; choose another path"),
                                      (errno.EACCES, "check the path and its permissions")])
def test_environment_errors_name_the_file_and_the_fix(code, fix):
    from asr.utils import environment_message

    message = environment_message(OSError(code, os.strerror(code), "/x/out.pt"))
    assert message == f"/x/out.pt: {os.strerror(code)}; {fix}, then run again"
    assert environment_message(OSError(code, os.strerror(code))).startswith("a file: ")
    assert environment_message(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug, not the environment


def test_help_shows_defaults_only_where_the_text_does_not_already_say(monkeypatch):
    import argparse

    from asr.utils import HelpFormatter

    monkeypatch.setenv("COLUMNS", "10000")
    p = argparse.ArgumentParser(formatter_class=HelpFormatter)
    p.add_argument("--beam", type=int, default=8, help="beam size")
    p.add_argument("--said", default=3, help="the default is three")
    p.add_argument("--no-pack", dest="pack", action="store_false", help="do not pack")
    p.add_argument("--flag", action="store_true", help="a switch")
    text = " ".join(p.format_help().split())
    assert "beam size (default: 8)" in text and "do not pack (default: True)" in text
    assert "the default is three" in text and "three (default" not in text
    assert "a switch (default" not in text


def test_progress_shows_a_bar_on_a_terminal(monkeypatch):
    import io

    from asr.utils import progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert list(progress(iter([1, 2, 3]), 3, "reading headers")) == [1, 2, 3]
    assert "reading headers" in sys.stderr.getvalue() and "3/3" in sys.stderr.getvalue()
