import re
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
from asr.models import MODELS, BiRNNConfig, DS2Config
from asr.optim import OptimConfig
from asr.train import CONFIG_VARIANTS, TrainConfig
from asr.utils import UserError

MANIFESTS = ["data.train_manifest=train.jsonl", "data.dev_manifest=dev.jsonl"]


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def load(overrides: list[str], convert=config_to_object) -> TrainConfig:
    """Compose ``asr/conf/`` with ``overrides`` as ``asr-train`` does and convert it to dataclasses."""
    register_configs(TrainConfig, CONFIG_VARIANTS)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        HydraConfig.instance().set_config(compose("config", overrides=overrides, return_hydra_config=True))
        try:
            return convert(compose("config", overrides=overrides))
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
    assert type(cfg.model) is MODELS[cfg.model.name].config_class and isinstance(cfg.features, FeatureConfig)
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
    assert defaults.model == BiRNNConfig() and defaults.features == FeatureConfig()
    assert load(["model=ds2", *MANIFESTS]).model == DS2Config()
    assert defaults.optim == OptimConfig()
    demo = load(["experiment=demo", "model.hidden_size=64", "optim.lr=0.01"])
    assert (demo.model.hidden_size, demo.optim.lr, demo.features.n_mels) == (64, 0.01, 64)
    assert demo.data.train_manifest == "exp/demo/data/train.jsonl"


def test_model_ds2_gets_its_own_options_and_the_shared_overrides_keep_working():
    ds2 = load(["model=ds2", "model.hidden_size=64", "model.time_stride=3", "model.rnn_type=gru", *MANIFESTS]).model
    assert type(ds2) is DS2Config and (ds2.hidden_size, ds2.time_stride, ds2.rnn_type) == (64, 3, "gru")
    assert load(["model.hidden_size=64", *MANIFESTS]).model == BiRNNConfig(hidden_size=64)


@pytest.mark.parametrize("option", _options("experiment"))
def test_every_experiment_preset_composes_with_model_ds2(option):
    alone, ds2 = load([f"experiment={option}"]), load([f"experiment={option}", "model=ds2"])
    assert type(ds2.model) is DS2Config
    assert (ds2.model.hidden_size, ds2.model.num_layers) == (alone.model.hidden_size, alone.model.num_layers)


def test_unknown_keys_are_those_of_the_chosen_model():
    from asr.config import unknown_keys

    keys = lambda overrides: load([*overrides, *MANIFESTS], lambda cfg: unknown_keys(cfg, TrainConfig))  # noqa: E731
    assert keys(["model=ds2"]) == [] and keys([]) == []  # conv_channels, subsample: each model's own
    assert keys(["model=ds2", "+model.hiden_size=32"]) == ["model.hiden_size"]
    assert keys(["+model.conv_channels=8"]) == ["model.conv_channels"]  # a ds2 option given to birnn


def test_missing_manifests_are_a_one_line_user_error():
    with pytest.raises(UserError, match=r"data.train_manifest is not set; pass data.train_manifest=\.\.\.") as err:
        load([])
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("model.rnn_type=transformer", "model.rnn_type='transformer'; expected one of"),
    ("features.normalize=cmvn", "features.normalize='cmvn'; expected one of"),
    ("optim.schedule=linear", "optim.schedule='linear'; expected one of"),
    ("model.dropout=1.5", "model.dropout=1.5"),
    ("model.name=ds2", "model.name='ds2' but these are the birnn model's options; choose the architecture"),
    ("augment.speeds=[0,1]", "augment.speeds"),
])
def test_invalid_values_name_the_key(override, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace(".", r"\.")):
        load([override, *MANIFESTS])


@pytest.mark.parametrize("override, message", [
    ("model.hidden_size=abc", "model.hidden_size=abc"),
    ("model.attention=true", "model.attention"),
    ("model=transformer", "model/transformer"),
    ("model.time_stride=2", "model.time_stride"),  # a ds2 option, and model is blstm
])
def test_bad_overrides_fail_at_composition(override, message):
    with pytest.raises(HydraException, match=message.replace(".", r"\.")):
        load([override, *MANIFESTS])


@pytest.mark.parametrize("overrides, error, message", [
    (["model.subsample=2"], HydraException, "model.subsample"),  # a birnn option
    (["model.time_stride=4"], ValueError, "model.time_stride=4; expected one of (2, 3)"),
    (["model.activation=tanh"], ValueError, "model.activation='tanh'; expected one of ['hardtanh', 'relu']"),
])
def test_bad_ds2_overrides_are_refused_naming_the_key(overrides, error, message):
    with pytest.raises(error, match=re.escape(message)):
        load(["model=ds2", *overrides, *MANIFESTS])


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
