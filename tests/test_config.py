import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException

from asr.augment import AugmentConfig
from asr.config import CONF_DIR, config_to_object, register_configs
from asr.data import DataConfig
from asr.features import FeatureConfig
from asr.model import ModelConfig
from asr.optim import OptimConfig
from asr.train import TrainConfig
from asr.utils import UserError

MANIFESTS = ["data.train_manifest=train.jsonl", "data.dev_manifest=dev.jsonl"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load(overrides: list[str]) -> TrainConfig:
    """Compose ``asr/conf/`` with ``overrides`` as ``asr-train`` does and convert it to dataclasses."""
    register_configs(TrainConfig)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        HydraConfig.instance().set_config(compose("config", overrides=overrides, return_hydra_config=True))
        try:
            return config_to_object(compose("config", overrides=overrides))
        finally:
            HydraConfig.instance().cfg = None


def test_every_group_has_options():
    for group in ("model", "features", "optim", "data", "experiment"):
        assert _options(group), group


@pytest.mark.parametrize("group, option", [(g, o) for g in ("model", "features", "optim", "data")
                                           for o in _options(g)])
def test_every_group_option_composes_into_train_config(group, option):
    cfg = load([f"{group}={option}", *MANIFESTS])
    assert isinstance(cfg, TrainConfig)
    assert isinstance(cfg.model, ModelConfig) and isinstance(cfg.features, FeatureConfig)
    assert isinstance(cfg.optim, OptimConfig) and isinstance(cfg.data, DataConfig)
    assert isinstance(cfg.augment, AugmentConfig)
    assert isinstance(cfg.optim.betas, list) and cfg.data.train_manifest == "train.jsonl"
    assert (cfg.experiment, cfg.exp_dir) == ("default", "exp/default")


@pytest.mark.parametrize("option", _options("experiment"))
def test_every_experiment_preset_composes_on_its_own(option):
    cfg = load([f"experiment={option}"])
    assert isinstance(cfg, TrainConfig) and cfg.experiment == option and cfg.exp_dir == f"exp/{option}"
    assert cfg.data.train_manifest and cfg.data.dev_manifest


def test_presets_select_what_their_names_say():
    assert load(["model=bgru", *MANIFESTS]).model.rnn_type == "gru"
    brnn = load(["model=brnn", *MANIFESTS]).model
    assert (brnn.rnn_type, brnn.layer_norm, brnn.hidden_size) == ("rnn", True, 320)
    defaults = load(MANIFESTS)
    assert defaults.model == ModelConfig() and defaults.features == FeatureConfig()
    assert defaults.optim == OptimConfig()
    demo = load(["experiment=demo", "model.hidden_size=64", "optim.lr=0.01"])
    assert (demo.model.hidden_size, demo.optim.lr, demo.features.n_mels) == (64, 0.01, 64)
    assert demo.data.train_manifest == "exp/demo/data/train.jsonl"


def test_missing_manifests_are_a_one_line_user_error():
    with pytest.raises(UserError, match=r"data.train_manifest is not set; pass data.train_manifest=\.\.\.") as err:
        load([])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("model.rnn_type=transformer", "model.rnn_type='transformer'; expected one of"),
    ("features.normalize=cmvn", "features.normalize='cmvn'; expected one of"),
    ("optim.schedule=linear", "optim.schedule='linear'; expected one of"),
    ("model.dropout=1.5", "model.dropout=1.5"),
    ("augment.speeds=[0,1]", "augment.speeds"),
])
def test_invalid_values_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load([override, *MANIFESTS])


@pytest.mark.parametrize("override, message", [
    ("model.hidden_size=abc", "model.hidden_size=abc"),
    ("model.attention=true", "model.attention"),
    ("model=transformer", "model/transformer"),
])
def test_bad_overrides_fail_at_composition(override, message):
    with pytest.raises(HydraException, match=message.replace(".", r"\.")):
        load([override, *MANIFESTS])


def test_a_bad_value_on_the_command_line_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "asr.train", "experiment=demo", "model.rnn_type=transformer"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr == "error: model.rnn_type='transformer'; expected one of ['gru', 'lstm', 'rnn']\n"


def test_a_user_error_from_a_data_loader_worker_is_reported_as_its_own_line(tmp_path):
    from torch.utils.data import DataLoader

    from asr.audio import AudioError
    from asr.config import one_line
    from asr.data import AudioDataset, Utterance, collate
    from asr.text import Vocabulary

    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    loader = DataLoader(AudioDataset([Utterance("a", str(bad), 1.0, "a")], Vocabulary(), 16000),
                        batch_size=1, collate_fn=collate, num_workers=1)
    with pytest.raises(AudioError) as err:
        next(iter(loader))
    assert "Traceback" in str(err.value)  # what torch re-raises
    message = one_line(err.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message and "Traceback" not in message
    assert one_line(ValueError("model.dropout=1.5; expected 0 <= dropout < 1")) == \
        "model.dropout=1.5; expected 0 <= dropout < 1"


def test_a_bad_interpolation_is_a_one_line_user_error():
    with pytest.raises(UserError, match=r"^exp_dir: Interpolation key 'nowhere' not found$"):
        load(["exp_dir=${nowhere}", *MANIFESTS])
