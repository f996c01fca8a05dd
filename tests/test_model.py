"""The birnn model (asr/models/birnn.py) and the recurrent layers every model shares
(asr/models/rnn.py). What every model promises is tested in test_models.py."""

import pytest
import torch
from torch import nn

from asr.models import BiRNNConfig, BiRNNCTC
from asr.models.birnn import stack_frames

pytestmark = pytest.mark.usefixtures("single_thread")


def _model(seed=0, input_dim=8, vocab=11, **kw) -> BiRNNCTC:
    torch.manual_seed(seed)
    cfg = dict(hidden_size=12, num_layers=2, dropout=0.0)
    cfg.update(kw)
    return BiRNNCTC(BiRNNConfig(**cfg), input_dim, vocab).eval()


def _features(lengths, dim=8, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), max(lengths), dim, generator=g)
    mask = torch.arange(max(lengths))[None, :, None] < torch.tensor(lengths)[:, None, None]
    return x * mask, torch.tensor(lengths)


@pytest.mark.parametrize("rnn_type, rnn_class", [("lstm", nn.LSTM), ("gru", nn.GRU), ("rnn", nn.RNN)])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_architecture_and_output_shapes(rnn_type, rnn_class, layer_norm):
    model = _model(rnn_type=rnn_type, layer_norm=layer_norm, num_layers=3, subsample=3)
    assert len(model.rnns) == 3 and all(isinstance(r, rnn_class) and r.bidirectional for r in model.rnns)
    assert model.rnns[0].input_size == 8 * 3 and model.rnns[1].input_size == 2 * 12
    assert all(isinstance(n, nn.LayerNorm if layer_norm else nn.Identity) for n in model.norms)
    assert model.classifier.out_features == 11
    x, lengths = _features([10, 7, 3])
    log_probs, out_lengths = model(x, lengths)
    assert log_probs.shape == (3, 4, 11) and log_probs.dtype == torch.float32
    assert out_lengths.tolist() == [4, 3, 1]  # ceil(frames / subsample)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 4))


def test_stack_frames_concatenates_consecutive_frames():
    x = torch.arange(2 * 7 * 2, dtype=torch.float32).reshape(2, 7, 2)
    y = stack_frames(x, 3)
    assert y.shape == (2, 3, 6)
    assert y[0, 0].tolist() == x[0, :3].flatten().tolist()
    assert y[0, 1].tolist() == x[0, 3:6].flatten().tolist()
    assert y[0, 2].tolist() == x[0, 6].tolist() + [0.0] * 4  # last step zero-padded
    assert stack_frames(x, 1) is x
    assert BiRNNConfig(subsample=3).output_lengths(torch.tensor([7, 4, 6])).tolist() == [3, 2, 2]  # rounded up
    assert BiRNNConfig(subsample=3).output_lengths(7) == 3


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layer_norm", [False, True])
def test_packed_and_padded_agree_when_lengths_are_equal(rnn_type, layer_norm):
    x, lengths = _features([9, 9, 9])
    packed, n1 = _model(rnn_type=rnn_type, layer_norm=layer_norm, pack="always")(x, lengths)
    padded, n2 = _model(rnn_type=rnn_type, layer_norm=layer_norm, pack="never")(x, lengths)
    assert torch.equal(n1, n2)
    torch.testing.assert_close(packed, padded, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_packed_output_of_a_shorter_utterance_equals_running_it_alone(rnn_type):
    model = _model(rnn_type=rnn_type, pack="always", layer_norm=True)
    x, lengths = _features([12, 5, 8])
    batch, out_lengths = model(x, lengths)
    for i, n in enumerate(out_lengths):
        alone, _ = model(x[i:i + 1, :lengths[i]], lengths[i:i + 1])
        torch.testing.assert_close(batch[i, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_padded_path_is_exact_for_the_longest_utterance_and_is_the_cpu_training_default():
    x, lengths = _features([12, 5])
    padded, _ = _model(pack="never")(x, lengths)
    alone, _ = _model(pack="never")(x[:1], lengths[:1])
    torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)
    auto, _ = _model(pack="auto").train()(x, lengths)
    assert torch.equal(auto, padded)  # dropout is 0: training mode differs only in packing


def test_cpu_inference_output_does_not_depend_on_the_batch():
    model = _model(pack="auto")  # eval mode, on the CPU
    x, lengths = _features([12, 5])
    batch, n = model(x, lengths)
    alone, _ = model(x[1:, :5], lengths[1:])
    torch.testing.assert_close(batch[1, :n[1]], alone[0], atol=1e-5, rtol=1e-5)
    padded, _ = _model(pack="never")(x, lengths)
    assert not torch.allclose(padded[1, :n[1]], alone[0], atol=1e-3)  # what packing prevents


def test_dropout_is_active_in_training_only():
    model = _model(dropout=0.5)
    x, lengths = _features([6, 6])
    assert torch.equal(model(x, lengths)[0], model(x, lengths)[0])
    model.train()
    assert not torch.equal(model(x, lengths)[0], model(x, lengths)[0])


def _rnn_output_dtypes(model: BiRNNCTC, x, lengths, device: str, dtype) -> set:
    seen = set()

    def hook(module, args, out):
        y = out[0]
        seen.add((y.data if isinstance(y, nn.utils.rnn.PackedSequence) else y).dtype)

    handles = [rnn.register_forward_hook(hook) for rnn in model.rnns]
    with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
        log_probs, _ = model(x, lengths)
    for h in handles:
        h.remove()
    assert log_probs.dtype == torch.float32
    return seen


@pytest.mark.cuda
@pytest.mark.parametrize("dtype, expected", [(None, torch.float32), (torch.float16, torch.float16),
                                             (torch.bfloat16, torch.float32)])
def test_cuda_recurrent_layers_compute_dtype(dtype, expected):
    """cuDNN would run the RNN in fp16 under bf16 autocast (no loss scale there): rnn_precision
    keeps it in float32; under fp16 autocast (trained with the grad scaler) it is fp16."""
    x, lengths = _features([12, 5, 8])
    model = _model().cuda().train()
    assert _rnn_output_dtypes(model, x.cuda(), lengths.cuda(), "cuda", dtype) == {expected}


@pytest.mark.cuda
def test_cuda_auto_packing_matches_the_cpu_packed_path():
    x, lengths = _features([12, 5, 8])
    cpu, _ = _model(pack="always")(x, lengths)
    gpu, n = _model(pack="auto").cuda()(x.cuda(), lengths.cuda())
    for i, k in enumerate(n.tolist()):
        torch.testing.assert_close(gpu[i, :k].cpu(), cpu[i, :k], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kwargs", [{"rnn_type": "transformer"}, {"pack": "sometimes"}, {"num_layers": 0},
                                    {"hidden_size": 0}, {"subsample": 0}, {"dropout": 1.0}, {"dropout": -0.1},
                                    {"name": "ds2"}])
def test_bad_model_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        BiRNNConfig(**kwargs)
