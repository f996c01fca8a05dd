import pytest
import torch

from asr.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from asr.recognizer import Recognizer
from conftest import tiny_recognizer, tone

pytestmark = pytest.mark.usefixtures("single_thread")


def _batch(seconds=(1.0, 0.55, 0.3)):
    waves = [tone(s, freq=300 + 200 * i, seed=i) for i, s in enumerate(seconds)]
    return torch.nn.utils.rnn.pad_sequence(waves, batch_first=True), torch.tensor([len(w) for w in waves])


def test_forward_shapes_and_frame_shift(recognizer):
    waves, lengths = _batch()
    log_probs, steps = recognizer(waves, lengths)
    assert log_probs.shape == (3, 34, 29) and steps.tolist() == [34, 19, 11]  # 101, 56, 31 frames / 3
    assert recognizer.sample_rate == 16000 and recognizer.frame_shift == pytest.approx(0.03)
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(3, 34))


def test_an_utterance_in_a_batch_gets_the_output_it_gets_alone():
    rec = tiny_recognizer(pack="always").eval()
    waves, lengths = _batch()
    batch, steps = rec(waves, lengths)
    for i, n in enumerate(steps):
        alone, _ = rec(waves[i:i + 1, :lengths[i]], lengths[i:i + 1])
        torch.testing.assert_close(batch[i, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_checkpoint_round_trip_gives_the_same_outputs(tmp_path):
    rec = tiny_recognizer(rnn_type="gru", layers=2, layer_norm=True).eval()
    rec.feature_cfg.normalize = "global"
    rec.features.mean.fill_(-3.0)
    rec.features.std.fill_(2.0)
    state = rec.describe()
    assert set(state) == {"feature_config", "model_config", "vocab", "numbers", "state_dict"}
    assert state["model_config"]["rnn_type"] == "gru" and state["feature_config"]["normalize"] == "global"
    save_checkpoint(tmp_path / "m.pt", state)
    loaded = Recognizer.from_checkpoint(tmp_path / "m.pt")
    assert not loaded.training
    assert loaded.vocab == rec.vocab and loaded.model_cfg == rec.model_cfg and loaded.feature_cfg == rec.feature_cfg
    assert loaded.features.mean.eq(-3.0).all()  # global statistics travel with the weights
    waves, lengths = _batch()
    torch.testing.assert_close(loaded(waves, lengths), rec(waves, lengths))
    assert Recognizer.from_checkpoint(load_checkpoint(tmp_path / "m.pt")).vocab == rec.vocab


@pytest.mark.parametrize("corrupt", [
    lambda s: s["model_config"].update(hidden_size=32),  # weights of another shape
    lambda s: s["model_config"].update(attention=True),  # a key this version does not know
    lambda s: s["feature_config"].update(normalize="bogus"),
    lambda s: s.update(vocab="aa"),
])
def test_a_mismatched_checkpoint_is_a_checkpoint_error(corrupt):
    state = tiny_recognizer().describe()
    corrupt(state)
    with pytest.raises(CheckpointError, match="does not match this version") as err:
        Recognizer.from_checkpoint(state)
    assert "\n" not in str(err.value)


@pytest.mark.cuda
def test_from_checkpoint_to_cuda():
    rec = tiny_recognizer().eval()
    gpu = Recognizer.from_checkpoint(rec.describe(), "cuda")
    waves, lengths = _batch()
    out, _ = gpu(waves.cuda(), lengths.cuda())
    assert out.is_cuda
