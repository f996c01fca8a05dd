"""The model registry (asr/models/), what every registered model promises, and the ds2 model.
The birnn model and the shared recurrent layers have their own tests in test_model.py."""

import warnings

import pytest
import torch
from torch import nn

from asr.checkpoint import load_checkpoint, save_checkpoint
from asr.models import MODELS, BiRNNConfig, BiRNNCTC, DS2Config, DS2CTC, build_model, config_classes, model_config
from asr.models.ds2 import MaskedBatchNorm
from asr.recognizer import Recognizer, output_steps
from asr.utils import UserError
from conftest import tiny_recognizer, tone

pytestmark = pytest.mark.usefixtures("single_thread")

# Every model, and the other strides each allows: lengths that are not multiples of the
# stride are where an off-by-one in output_lengths shows.
VARIANTS = [("birnn", {}), ("birnn", {"subsample": 1}), ("birnn", {"subsample": 2}), ("ds2", {}),
            ("ds2", {"time_stride": 3}), ("ds2", {"activation": "relu", "rnn_type": "gru", "layer_norm": True})]
assert {name for name, _ in VARIANTS} == set(MODELS), "add the new model to VARIANTS"


def _model(name: str, seed: int = 0, input_dim: int = 16, vocab: int = 11, **kw) -> nn.Module:
    torch.manual_seed(seed)
    cfg = model_config({"name": name, "hidden_size": 12, "num_layers": 2, "dropout": 0.0, **kw})
    model = build_model(cfg, input_dim, vocab).eval()
    for norm in model.modules():  # as after training: batch norm no longer maps 0 to 0
        if isinstance(norm, nn.modules.batchnorm._BatchNorm):
            norm.running_mean.uniform_(-1, 1), norm.running_var.uniform_(0.5, 2)
            norm.weight.data.uniform_(0.5, 2), norm.bias.data.uniform_(-1, 1)
    return model


def _features(lengths, dim=16, seed=1, padding=0.0):
    """``(batch, max(lengths), dim)`` random features, ``padding`` past each length (LogMel's is 0)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), dim, generator=g)
    inside = torch.arange(max(lengths))[None, :, None] < torch.tensor(lengths)[:, None, None]
    return torch.where(inside, x, torch.full_like(x, padding)), torch.tensor(lengths)


def _ids(variant):
    name, kw = variant
    return name + "".join(f"-{k}={v}" for k, v in kw.items())


# --- the registry ---------------------------------------------------------------------

def test_each_name_maps_to_its_model_class_and_config():
    assert config_classes() == {"birnn": BiRNNConfig, "ds2": DS2Config}
    for name, cls in MODELS.items():
        cfg = model_config({"name": name, "hidden_size": 8, "num_layers": 1})
        assert type(cfg) is cls.config_class and cfg.name == name == cls.config_class().name
        assert type(build_model(cfg, 16, 5)) is cls
    assert type(build_model(DS2Config(), 40, 29)) is DS2CTC and type(build_model(BiRNNConfig(), 40, 29)) is BiRNNCTC


def test_an_unknown_name_is_refused_in_one_line_listing_the_names():
    with pytest.raises(UserError) as err:
        model_config({"name": "conformer", "hidden_size": 8})
    assert str(err.value) == "model.name='conformer' is not a model of this version of asr; expected one of birnn, ds2"
    state = tiny_recognizer().describe()
    state["model_config"]["name"] = "conformer"  # a checkpoint of a newer asr
    with pytest.raises(UserError, match=r"^checkpoint does not match this version of asr \(model.name='conformer' "
                                        r"is not a model .*birnn, ds2\)$"):
        Recognizer.from_checkpoint(state)


def test_a_config_names_its_own_model_only():
    with pytest.raises(ValueError, match="model.name='ds2' but these are the birnn model's options; choose the "
                                         "architecture with model=PRESET"):
        BiRNNConfig(name="ds2")
    with pytest.raises(TypeError):
        model_config({"name": "ds2", "subsample": 3})  # a birnn option


# An untrained 1 x 16 GRU with layer norm as asr wrote it before asr.models: its model
# config has no name, and these are its weights' names.
OLD_MODEL_CONFIG = {"rnn_type": "gru", "hidden_size": 16, "num_layers": 1, "dropout": 0.0, "layer_norm": True,
                    "subsample": 3, "pack": "auto"}
OLD_MODEL_KEYS = [f"model.rnns.0.{w}_l0{r}" for r in ("", "_reverse") for w in ("weight_ih", "weight_hh", "bias_ih",
                                                                             "bias_hh")]
OLD_MODEL_KEYS += ["model.norms.0.weight", "model.norms.0.bias", "model.classifier.weight", "model.classifier.bias"]


def test_an_old_checkpoint_without_a_model_name_loads_as_birnn(tmp_path):
    rec = tiny_recognizer(rnn_type="gru", layer_norm=True).eval()
    state = rec.describe()
    assert state["model_config"].pop("name") == "birnn"
    assert state["model_config"] == OLD_MODEL_CONFIG
    assert sorted(k for k in state["state_dict"] if k.startswith("model.")) == sorted(OLD_MODEL_KEYS)
    save_checkpoint(tmp_path / "old.pt", state)
    loaded = Recognizer.from_checkpoint(tmp_path / "old.pt")
    assert type(loaded.model) is BiRNNCTC and loaded.model_cfg == rec.model_cfg
    waves, lengths = tone(0.7)[None], torch.tensor([11200])
    torch.testing.assert_close(loaded(waves, lengths), rec(waves, lengths))
    assert "name" not in load_checkpoint(tmp_path / "old.pt")["model_config"]


# --- what every model promises ----------------------------------------------------------

@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_output_lengths_are_the_lengths_the_model_produces(variant):
    name, kw = variant
    model = _model(name, **kw)
    lengths = list(range(1, 26)) + [97, 100, 101]
    for n in lengths:  # alone, unpadded: the output's own length is the truth
        x, length = _features([n])
        log_probs, out = model(x, length)
        assert log_probs.shape[1] == out.item() == model.output_lengths(n) == model.cfg.output_lengths(n), n
        assert model.output_lengths(torch.tensor([n])).tolist() == [log_probs.shape[1]]
    x, batch_lengths = _features(lengths)
    log_probs, out = model(x, batch_lengths)
    assert out.tolist() == [model.output_lengths(n) for n in lengths] and log_probs.shape[1] == max(out)
    assert log_probs.shape == (len(lengths), max(out), 11) and log_probs.dtype == torch.float32
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(log_probs.shape[:2]))
    stride = model.cfg.frames_per_step
    assert all(model.output_lengths(n) == -(-n // stride) for n in lengths)  # one step per `stride` frames


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_an_utterance_in_a_padded_batch_gets_the_output_it_gets_alone(variant):
    name, kw = variant
    model = _model(name, **kw)  # eval mode
    x, lengths = _features([29, 7, 16, 1, 22])
    batch, steps = model(x, lengths)
    for i, n in enumerate(steps.tolist()):
        alone, _ = model(x[i:i + 1, :lengths[i]], lengths[i:i + 1])
        torch.testing.assert_close(batch[i, :n], alone[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_ctc_loss_is_finite_and_reaches_every_parameter(name):
    model = _model(name, pack="always").train()
    x, lengths = _features([15, 9])
    log_probs, out_lengths = model(x, lengths)
    targets = torch.tensor([[1, 2, 3], [4, 4, 0]])
    loss = nn.functional.ctc_loss(log_probs.transpose(0, 1), targets, out_lengths, torch.tensor([3, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("training", [False, True])
def test_output_is_float32_under_autocast(name, training):
    model = _model(name).train(training)
    x, lengths = _features([6, 3])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_probs, _ = model(x, lengths)
    assert log_probs.dtype == torch.float32 and torch.isfinite(log_probs).all()


@pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
def test_the_export_form_shares_the_weights_and_traces_for_every_length(variant):
    name, kw = variant
    model = _model(name, **kw)
    exportable = model.for_export()
    assert {id(p) for p in exportable.parameters()} == {id(p) for p in model.parameters()}
    x, lengths = _features([23, 11])
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings on nn.RNN's own checks, and jit's deprecation
        traced = torch.jit.trace(exportable, (x, lengths), check_trace=False)
        for n in (1, 8, 31, 50):  # other lengths than the traced one, run alone as exports do
            y, length = _features([n], seed=n)
            (want, want_n), (got, got_n) = model(y, length), traced(y, length)
            assert torch.equal(want_n, got_n)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_steps_and_frame_shift_match_what_the_recognizer_produces(name):
    rec = tiny_recognizer(name=name).eval()
    assert rec.frame_shift == pytest.approx({"birnn": 0.03, "ds2": 0.02}[name])  # hop 10 ms x frames per step
    for samples in (160, 1600, 4321, 16000, 16161, 23999):
        with torch.no_grad():
            log_probs, steps = rec(tone(samples / 16000)[None], torch.tensor([samples]))
        assert output_steps(samples / 16000, rec.feature_cfg, rec.model_cfg) == steps.item() == log_probs.shape[1]
        # Word times are step x frame_shift: the steps span the audio, to within a step.
        assert steps.item() * rec.frame_shift == pytest.approx(samples / 16000, abs=rec.frame_shift + 1e-9)


# --- ds2 ------------------------------------------------------------------------------

@pytest.mark.parametrize("time_stride", [2, 3])
@pytest.mark.parametrize("rnn_type, rnn_class", [("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN)])
def test_ds2_architecture(time_stride, rnn_type, rnn_class):
    model = _model("ds2", input_dim=80, time_stride=time_stride, rnn_type=rnn_type, num_layers=3)
    first, second = model.conv.convs
    assert (first.in_channels, first.out_channels, first.kernel_size) == (1, 32, (11, 41))
    assert first.stride == (time_stride, 2)
    assert (second.in_channels, second.kernel_size, second.stride) == (32, (11, 21), (1, 2))
    assert all(isinstance(n, MaskedBatchNorm) for n in model.conv.norms)
    assert isinstance(model.conv.activation, nn.Hardtanh) and model.conv.activation.max_val == 20.0
    assert len(model.rnns) == 3 and all(isinstance(r, rnn_class) and r.bidirectional for r in model.rnns)
    assert model.rnns[0].input_size == 32 * 20  # 80 mels halved twice
    assert isinstance(_model("ds2", activation="relu").conv.activation, nn.ReLU)


def test_ds2_padding_values_do_not_reach_the_output():
    model = _model("ds2")
    zeros, lengths = _features([19, 6, 12])
    noise, _ = _features([19, 6, 12], padding=7.0)
    torch.testing.assert_close(model(noise, lengths)[0], model(zeros, lengths)[0])


def test_ds2_batch_norm_statistics_count_only_the_steps_inside_utterances():
    """In training, batch norm uses the batch's statistics: more padding must not move them
    (nor the running estimates), so an utterance's front-end output stays the same."""
    x, lengths = _features([17, 9, 4])
    longer = torch.cat([x, torch.randn(3, 13, 16)], 1)  # the same batch padded with 13 more frames (of noise)
    runs = []
    for features in (x, longer):
        model = _model("ds2").train()
        out, steps = model.conv(features, lengths)
        runs.append((out, steps, [b.running_mean.clone() for b in model.conv.norms],
                     [b.running_var.clone() for b in model.conv.norms]))
    (a, steps, mean_a, var_a), (b, steps_b, mean_b, var_b) = runs
    assert torch.equal(steps, steps_b) and steps.tolist() == [9, 5, 2]
    for i, n in enumerate(steps.tolist()):
        torch.testing.assert_close(a[i, :n], b[i, :n], atol=1e-5, rtol=1e-5)
        assert b[i, n:].abs().max() == 0  # zero past the utterance
    for m_a, m_b, v_a, v_b in zip(mean_a, mean_b, var_a, var_b):
        torch.testing.assert_close(m_a, m_b)
        torch.testing.assert_close(v_a, v_b)
        assert not torch.equal(m_a, torch.zeros_like(m_a))  # the running estimates did move


def test_ds2_batch_norm_normalises_over_the_valid_steps():
    bn = MaskedBatchNorm(2).train()
    x = torch.randn(2, 2, 5, 3)
    valid = (torch.arange(5)[None, :] < torch.tensor([5, 2])[:, None])[:, None, :, None]
    y = bn(x, valid)
    inside = y.permute(1, 0, 2, 3)[:, valid.expand(2, 1, 5, 3).squeeze(1)]  # (channels, valid values)
    torch.testing.assert_close(inside.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(inside.var(1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    torch.testing.assert_close(bn.eval()(x, valid), (x - bn.running_mean[:, None, None]) /
                               (bn.running_var[:, None, None] + bn.eps).sqrt())


@pytest.mark.parametrize("kwargs", [{"time_stride": 1}, {"time_stride": 4}, {"activation": "tanh"},
                                    {"conv_channels": 0}, {"rnn_type": "transformer"}, {"dropout": 1.0},
                                    {"name": "birnn"}])
def test_bad_ds2_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        DS2Config(**kwargs)


@pytest.mark.cuda
@pytest.mark.parametrize("dtype, expected", [(torch.float16, torch.float16), (torch.bfloat16, torch.float32)])
def test_cuda_ds2_recurrent_layers_compute_dtype(dtype, expected):
    """As the birnn model's: under bf16 autocast the recurrent layers run in float32 (rnn_precision)."""
    seen = set()
    model = _model("ds2").cuda().train()
    for rnn in model.rnns:
        rnn.register_forward_hook(lambda m, a, out: seen.add(
            (out[0].data if isinstance(out[0], nn.utils.rnn.PackedSequence) else out[0]).dtype))
    x, lengths = _features([12, 5, 8])
    with torch.autocast("cuda", dtype=dtype):
        log_probs, _ = model(x.cuda(), lengths)
    assert seen == {expected} and log_probs.dtype == torch.float32
