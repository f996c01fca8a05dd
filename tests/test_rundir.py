"""A training run owns its exp_dir: one run at a time, an earlier run is never replaced
silently, overwrite moves it aside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from asr import rundir
from asr.utils import UserError


def test_a_second_claim_is_refused_naming_the_holder_and_succeeds_once_released(tmp_path):
    first = rundir.claim(tmp_path / "run")
    with pytest.raises(UserError, match=rf"in use by another training run \(PID {os.getpid()}\)"):
        rundir.claim(tmp_path / "run")
    first.release()
    with rundir.claim(tmp_path / "run"):
        pass


def test_the_lock_dies_with_its_process(tmp_path):
    code = ("import sys, time; from asr import rundir; rundir.claim(sys.argv[1]); print('held', flush=True); "
            "time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "run")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"PID {proc.pid}"):
            rundir.claim(tmp_path / "run")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the lock with the process
        try:
            rundir.claim(tmp_path / "run").release()
            break
        except UserError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_a_folder_holding_a_run_needs_resume_or_overwrite(tmp_path):
    run = tmp_path / "run"
    (run / "data").mkdir(parents=True)
    (run / "data" / "train.jsonl").write_text("{}\n")
    rundir.claim(run).release()  # a recipe's data/ is not a run
    (run / "best.pt").write_bytes(b"weights")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "step-10.pt").write_bytes(b"state")
    with pytest.raises(UserError, match=r"already holds a run \(best.pt, checkpoints\).*resume=true.*overwrite=true"):
        rundir.claim(run)
    rundir.claim(run, resume=True).release()  # continuing it is fine, and moves nothing
    assert (run / "best.pt").read_bytes() == b"weights"


def test_overwrite_moves_the_earlier_run_aside_and_deletes_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"old weights")
    (run / "metrics.jsonl").write_text('{"step": 1}\n')
    (run / "notes.txt").write_text("mine")
    with rundir.claim(run, overwrite=True) as claimed:
        assert claimed.replaced is not None and claimed.replaced.parent == run
        assert (claimed.replaced / "best.pt").read_bytes() == b"old weights"
        assert (claimed.replaced / "metrics.jsonl").read_text() == '{"step": 1}\n'
    assert not (run / "best.pt").exists() and (run / "notes.txt").read_text() == "mine"
    (run / "best.pt").write_bytes(b"second")
    with rundir.claim(run, overwrite=True) as again:  # a second overwrite in the same second
        assert again.replaced != claimed.replaced and (again.replaced / "best.pt").read_bytes() == b"second"


def test_an_unwritable_exp_dir_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create it or its lock file"):
        rundir.claim(tmp_path / "file" / "run")
