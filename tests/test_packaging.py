"""The toolkit outside its checkout: a built wheel, installed without the repository on
the path, composes its Hydra presets and trains from an unrelated folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """The wheel built from this checkout and installed (``--no-deps``: torch and the rest
    come from the running environment) into its own folder; the environment to run it."""
    d = tmp_path_factory.mktemp("wheel")
    src = d / "src"  # a copy of what a wheel is built from: the build leaves build/ and *.egg-info behind
    shutil.copytree(REPO / "asr", src / "asr", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(d / "dist"), str(src)], check=True, capture_output=True, timeout=300)
    [wheel] = (d / "dist").glob("asr-*.whl")
    target = d / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target), "OMP_NUM_THREADS": "1"}
    return target, env


def run(installed, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    target, env = installed
    return subprocess.run([str(target / "bin" / args[0]), *args[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_installed_package_is_the_wheel_not_the_checkout(installed, tmp_path):
    target, env = installed
    out = subprocess.run([sys.executable, "-c", "import asr, asr.config; print(asr.__file__); "
                          "print(asr.config.CONF_DIR)"], cwd=tmp_path, env=env, capture_output=True, text=True)
    module, conf = out.stdout.split()
    assert Path(module).is_relative_to(target) and (Path(conf) / "experiment" / "digits.yaml").is_file()
    assert (target / "asr" / "corpora" / "fsdd.py").is_file()  # subpackages ship too (asr-prepare needs it)


def test_installed_asr_train_composes_presets_and_trains_from_another_folder(installed, corpus, tmp_path):
    shown = run(installed, ["asr-train", "--cfg", "job", "experiment=digits"], tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    cfg = yaml.safe_load(shown.stdout)
    assert cfg["features"]["n_mels"] == 40 and cfg["model"]["hidden_size"] == 192 and cfg["epochs"] == 30
    trained = run(installed, ["asr-train", "experiment=demo", f"data.train_manifest={corpus.manifest}",
                              f"data.dev_manifest={corpus.manifest}", "model.hidden_size=16", "model.num_layers=1",
                              "max_steps=2", "epochs=1", "progress=false", "data.num_workers=0"], tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert (tmp_path / "exp" / "demo" / "best.pt").is_file()  # exp_dir relative to where it ran
