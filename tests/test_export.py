"""asr-export: ONNX and TorchScript files that describe themselves and match PyTorch."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.checkpoint import CheckpointError, save_checkpoint
from asr.export import OnnxRecognizer, TorchScriptRecognizer, main as export_main
from asr.features import FeatureConfig
from asr.models import MODELS, model_config
from asr.recognizer import Recognizer
from asr.synth import Voice, render
from asr.text import Vocabulary
from asr.transcribe import main as transcribe_main, transcribe_waves

pytest.importorskip("onnxruntime")
SR = 16000


def _exported(tmp_path_factory, name: str):
    """A checkpoint of model ``name`` with global feature statistics (and, where it has batch
    norm, running statistics) as after training; the recogniser and three utterances."""
    torch.manual_seed(0)
    rec = Recognizer(FeatureConfig(n_mels=40, normalize="global"),
                     model_config({"name": name, "hidden_size": 24, "num_layers": 2}), Vocabulary()).eval()
    rec.features.mean.uniform_(-5, 0)
    rec.features.std.uniform_(1, 3)
    for norm in rec.model.modules():
        if isinstance(norm, torch.nn.modules.batchnorm._BatchNorm):
            norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
    d = tmp_path_factory.mktemp(f"export-{name}")
    save_checkpoint(d / "m.pt", rec.describe())
    waves = [torch.from_numpy(render(t, Voice("en-us"), SR, np.random.default_rng(i)))
             for i, t in enumerate(["one two", "the weather is nice today", "stop"])]
    return d, rec, waves


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _exported(tmp_path_factory, "birnn")


@pytest.fixture(scope="module", params=sorted(MODELS))
def each_model(request, tmp_path_factory):
    return _exported(tmp_path_factory, request.param)


def _batch(waves):
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), torch.tensor([len(w) for w in waves])


@pytest.mark.parametrize("fmt,suffix,cls", [("onnx", ".onnx", OnnxRecognizer),
                                            ("torchscript", ".ts", TorchScriptRecognizer)])
def test_export_matches_pytorch(each_model, capsys, fmt, suffix, cls):
    d, rec, waves = each_model
    out = d / f"m{suffix}"
    assert export_main([str(out), "--model", str(d / "m.pt"), "--format", fmt]) == 0
    assert "wrote" in capsys.readouterr().out
    exported = cls(out)
    assert exported.vocab == rec.vocab and exported.frame_shift == rec.frame_shift
    assert exported.feature_cfg == rec.feature_cfg and exported.model_cfg == rec.model_cfg
    batch, lengths = _batch(waves)  # lengths not multiples of the hop or the subsampling
    with torch.no_grad():
        ref, ref_len = rec(batch, lengths)
    got, got_len = exported(batch, lengths)
    assert torch.equal(ref_len, got_len) and got.shape == ref.shape
    mask = torch.arange(ref.shape[1])[None, :, None] < ref_len[:, None, None]
    assert float(((ref - got).abs() * mask).max()) < 1e-4
    ref_text = [h[0].text for h in transcribe_waves(rec, waves)]
    assert [h[0].text for h in transcribe_waves(exported, waves)] == ref_text


def test_onnx_metadata_and_transcribe_cli(model, tmp_path, capsys):
    import onnx

    d, rec, waves = model
    out = d / "cli.onnx"
    assert export_main([str(out), "--model", str(d / "m.pt")]) == 0
    meta = json.loads({p.key: p.value for p in onnx.load(str(out)).metadata_props}["asr"])
    assert meta["vocab"] == "".join(rec.vocab.tokens) and meta["model_config"]["hidden_size"] == 24
    assert meta["feature_config"]["normalize"] == "global" and len(meta["feature_mean"]) == 40
    paths = []
    for i, w in enumerate(waves):
        paths.append(str(tmp_path / f"{i}.wav"))
        sf.write(paths[-1], w.numpy(), SR, subtype="FLOAT")
    capsys.readouterr()
    assert transcribe_main([*paths, "--model", str(d / "m.pt"), "--format", "json"]) == 0
    torch_out = capsys.readouterr().out
    assert transcribe_main([*paths, "--model", str(out), "--format", "json"]) == 0
    onnx_out = capsys.readouterr().out
    assert [json.loads(x)["text"] for x in onnx_out.splitlines()] == \
           [json.loads(x)["text"] for x in torch_out.splitlines()]


def test_a_broken_metadata_block_is_a_checkpoint_error(model, tmp_path):
    import onnx

    d, rec, waves = model
    out = tmp_path / "m.onnx"
    assert export_main([str(out), "--model", str(d / "m.pt")]) == 0
    proto = onnx.load(str(out))
    for value, words in (('{"format": "asr-export/1", "vocab": ', "not valid JSON"), ("[1, 2]", "not a JSON object"),
                         ('{"format": "asr-export/1", "feature_config": {"bogus": 1}, "model_config": {}, '
                          '"vocab": "ab"}', "does not match this version")):
        proto.metadata_props[0].value = value
        onnx.save(proto, str(tmp_path / "bad.onnx"))
        with pytest.raises(CheckpointError, match=words):
            OnnxRecognizer(tmp_path / "bad.onnx")


def test_not_an_export_is_a_checkpoint_error(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        OnnxRecognizer(tmp_path / "x.onnx")
    with pytest.raises(CheckpointError, match="not found"):
        TorchScriptRecognizer(tmp_path / "missing.ts")


def test_state_export_keeps_what_transcription_needs_and_a_model_card(model, tmp_path, capsys):
    import asr
    from asr.checkpoint import load_checkpoint, save_checkpoint

    d, rec, waves = model
    training = {**rec.describe(), "optimizer": {"state": {}, "param_groups": []}, "rng": {"python": [1]},
                "progress": {"epoch": 7, "step": 700, "best_wer": 0.125},
                "config": {"data": {"train_manifest": "train.jsonl", "dev_manifest": "dev.jsonl"}, "epochs": 7}}
    save_checkpoint(tmp_path / "best.pt", training)
    report = tmp_path / "test_report.json"
    report.write_text(json.dumps({"summary": {"wer": 0.2, "cer": 0.1, "words": 50}, "utterances": []}))
    out = tmp_path / "model.pt"
    assert export_main([str(out), "--model", str(tmp_path / "best.pt"), "--report", f"test={report}"]) == 0
    assert "best dev WER 12.50%" in capsys.readouterr().out
    released = load_checkpoint(out)
    assert "optimizer" not in released and "rng" not in released and "progress" not in released
    card = released["model_card"]
    assert card["training_data"] == "train.jsonl" and card["epochs"] == 7 and card["best_dev_wer"] == 0.125
    assert card["test_summary"]["wer"] == 0.2 and card["parameters"] == sum(p.numel() for p in rec.parameters())
    assert json.loads((tmp_path / "model.json").read_text()) == card
    loaded = asr.load_model(out, device="cpu")
    assert loaded.card == card
    for k, v in rec.state_dict().items():
        assert torch.equal(v, loaded.recognizer.state_dict()[k]), k
    from asr.utils import run_cli
    assert run_cli(export_main, [str(out), "--model", str(tmp_path / "best.pt"), "--report", "nonsense"]) == 2
