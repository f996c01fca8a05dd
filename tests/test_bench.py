"""bench/gpu_check.py --dry-run: the GPU check's code paths on the CPU, so the check does
not rot between the (rare) runs on a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PARTS = ["cuda tests", "gradients", "lstm kernels", "demo data", "train auto", "train bf16", "train fp32",
         "throughput demo", "throughput librispeech_100", "decode", "torchrun"]


def gpu_check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "bench" / "gpu_check.py"), "--dry-run", "--out",
                           str(tmp_path / "out"), "--work", str(tmp_path / "work"), *args],
                          capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_gpu_check_dry_run_runs_every_part(tmp_path):
    proc = gpu_check(tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert [p["part"] for p in report["parts"]] == PARTS and all(p["ok"] for p in report["parts"])
    figures = {p["part"]: p["figures"] for p in report["parts"]}
    assert figures["train auto"]["steps"] == 4 and figures["torchrun"]["steps"] == 2
    assert figures["decode"]["long"]["minutes"] >= 0.5
    table = (tmp_path / "out" / "gpu_check.md").read_text()
    assert all(f"| {part} | ok |" in table for part in PARTS)


def test_gpu_check_reports_a_failing_part_and_exits_non_zero(tmp_path):
    not_a_folder = tmp_path / "data.txt"
    not_a_folder.write_text("not demo data")
    proc = gpu_check(tmp_path, "--data", str(not_a_folder), "--skip", "tests,gradients")
    assert proc.returncode == 1
    assert "| demo data | **FAIL** |" in (tmp_path / "out" / "gpu_check.md").read_text()
    assert "error: 1 part(s) failed: demo data" in proc.stderr
