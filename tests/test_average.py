"""Checkpoint averaging (``asr-average``)."""

from __future__ import annotations

import pytest
import torch

from asr.average import average_checkpoints, main
from asr.checkpoint import CheckpointError, epoch_path, load_checkpoint, save_checkpoint
from asr.features import FeatureConfig
from asr.models import BiRNNConfig
from asr.recognizer import Recognizer
from asr.text import Vocabulary


def write_model(path, seed: int, chars: str = "abc ", hidden: int = 8) -> dict:
    torch.manual_seed(seed)
    rec = Recognizer(FeatureConfig(n_mels=16), BiRNNConfig(hidden_size=hidden, num_layers=1), Vocabulary(chars))
    save_checkpoint(path, rec.describe())
    return rec.state_dict()


def test_average_is_the_mean_of_the_weights(tmp_path):
    weights = [write_model(tmp_path / f"m{i}.pt", seed=i) for i in range(3)]
    avg = average_checkpoints([tmp_path / f"m{i}.pt" for i in range(3)])
    for k, v in avg["state_dict"].items():
        expected = sum(w[k].double() for w in weights) / 3
        torch.testing.assert_close(v, expected.to(v.dtype))
        assert v.dtype == weights[0][k].dtype
    # buffers shared by all (the mel filterbank) are kept exactly
    fb = [k for k in avg["state_dict"] if k.endswith("fb")][0]
    assert torch.equal(avg["state_dict"][fb], weights[0][fb])
    rec = Recognizer.from_checkpoint(avg)  # a usable model checkpoint
    assert rec.vocab.tokens == Vocabulary("abc ").tokens


def test_different_models_are_refused(tmp_path):
    write_model(tmp_path / "a.pt", 0)
    write_model(tmp_path / "b.pt", 1, chars="xyz ")
    write_model(tmp_path / "c.pt", 1, hidden=4)
    with pytest.raises(CheckpointError, match="its vocab differs"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "b.pt"])
    with pytest.raises(CheckpointError, match="its model_config differs"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "c.pt"])


def test_cli_averages_the_last_epochs_of_a_run(tmp_path, capsys):
    weights = [write_model(epoch_path(tmp_path, e), seed=e) for e in (1, 2, 3)]
    assert main(["--exp-dir", str(tmp_path), "--last", "2", "--out", str(tmp_path / "avg.pt")]) == 0
    assert "epoch-002.pt, epoch-003.pt" in capsys.readouterr().out
    avg = load_checkpoint(tmp_path / "avg.pt")
    w = "model.classifier.weight"
    torch.testing.assert_close(avg["state_dict"][w], (weights[1][w] + weights[2][w]) / 2)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from asr.utils import run_cli

    assert run_cli(main, ["--exp-dir", str(tmp_path), "--out", str(tmp_path / "o.pt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no epoch-*.pt checkpoints" in err and err.count("\n") == 1
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    assert run_cli(main, [str(tmp_path / "bad.pt"), "--out", str(tmp_path / "o.pt")]) == 2
    assert "bad.pt: truncated or corrupt checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "o.pt").exists()
