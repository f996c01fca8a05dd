import numpy as np
import pytest
import soundfile as sf
import torch

from asr.augment import AugmentConfig, SpecAugment, WaveAugment, colored_noise
from asr.utils import UserError
from conftest import tone

pytestmark = pytest.mark.usefixtures("single_thread")


def _peak_hz(wave: torch.Tensor, sample_rate: int = 16000) -> float:
    spectrum = np.abs(np.fft.rfft(wave.numpy()))
    return float(np.fft.rfftfreq(len(wave), 1 / sample_rate)[spectrum.argmax()])


def test_everything_is_off_by_default():
    cfg = AugmentConfig()
    assert not cfg.wave_enabled and not cfg.spec_enabled
    wave = tone(0.2)
    assert torch.equal(WaveAugment(cfg, 16000)(wave, np.random.default_rng(0)), wave)


@pytest.mark.parametrize("speed", [0.9, 1.1])
def test_speed_perturbation_changes_duration_and_pitch(speed):
    wave = tone(1.0, freq=500)
    out = WaveAugment(AugmentConfig(speeds=[speed]), 16000)(wave, np.random.default_rng(0))
    assert out.dtype == torch.float32
    assert len(out) == pytest.approx(16000 / speed, rel=0.01)
    assert _peak_hz(out) == pytest.approx(500 * speed, rel=0.01)


@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_additive_noise_has_the_requested_snr(snr):
    wave = tone(1.0)
    aug = WaveAugment(AugmentConfig(noise_prob=1.0, noise_snr_db=[snr, snr]), 16000)
    out = aug(wave, np.random.default_rng(3))
    assert out.dtype == torch.float32 and out.shape == wave.shape
    noise = out - wave
    measured = 10 * torch.log10(wave.pow(2).mean() / noise.pow(2).mean())
    assert measured.item() == pytest.approx(snr, abs=0.1)


def test_augmentation_is_a_function_of_the_generator_seed():
    aug = WaveAugment(AugmentConfig(speeds=[0.9, 1.0, 1.1], noise_prob=0.5), 16000)
    wave = tone(0.5)
    runs = [aug(wave, np.random.default_rng(seed)) for seed in (1, 1, 2, 3, 4, 5)]
    assert torch.equal(runs[0], runs[1])
    assert any(r.shape != runs[0].shape or not torch.equal(r, runs[0]) for r in runs[2:])


def test_noise_comes_from_the_noise_folder(tmp_path):
    (tmp_path / "noise" / "sub").mkdir(parents=True)
    sf.write(tmp_path / "noise" / "sub" / "hum.wav", tone(0.3, freq=1000).numpy(), 16000)
    (tmp_path / "noise" / "notes.txt").write_text("not audio")
    aug = WaveAugment(AugmentConfig(noise_prob=1.0, noise_snr_db=[0, 0], noise_dir=str(tmp_path / "noise")), 16000)
    assert [p.endswith("hum.wav") for p in aug.noise_files] == [True]
    wave = tone(1.0, freq=200)  # longer than the noise file: the noise is tiled
    added = aug(wave, np.random.default_rng(0)) - wave
    assert added.dtype == torch.float32
    assert _peak_hz(added) == pytest.approx(1000, abs=5)


def test_an_empty_or_missing_noise_folder_is_a_user_error(tmp_path):
    for folder in (tmp_path, tmp_path / "missing"):
        with pytest.raises(UserError, match="no .wav, .flac or .ogg files"):
            WaveAugment(AugmentConfig(noise_prob=0.5, noise_dir=str(folder)), 16000)


def test_colored_noise_is_unit_variance():
    rng = np.random.default_rng(0)
    for n in (1, 2, 1000, 16001):
        noise = colored_noise(n, rng)
        assert noise.shape == (n,) and noise.dtype == np.float32 and np.isfinite(noise).all()
        if n > 2:
            assert noise.std() == pytest.approx(1.0, rel=1e-3)


def test_spec_augment_masks_time_and_frequency_per_utterance_in_training_only():
    torch.manual_seed(0)
    spec = SpecAugment(AugmentConfig(time_masks=2, time_mask_width=10, freq_masks=2, freq_mask_width=8))
    feats = torch.rand(4, 100, 40) + 1.0  # no zeros before masking
    out = spec(feats)
    assert out.shape == feats.shape
    masked = out == 0
    assert ((out == feats) | masked).all()  # masking only zeroes
    frames_masked = masked.all(dim=2)  # (batch, frames): every bin masked
    bins_masked = masked.all(dim=1)  # (batch, n_mels): every frame masked
    assert frames_masked.any() and bins_masked.any()
    assert (frames_masked.sum(1) <= 2 * 10).all() and (bins_masked.sum(1) <= 2 * 8).all()
    assert not all(torch.equal(masked[0], masked[i]) for i in range(1, 4))  # independent per utterance
    spec.eval()
    assert torch.equal(spec(feats), feats)


@pytest.mark.parametrize("kwargs", [{"speeds": [0.0, 1.0]}, {"noise_prob": 1.5}, {"noise_snr_db": [30, 10]},
                                    {"noise_snr_db": [10]}, {"time_masks": -1}])
def test_bad_augment_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)
