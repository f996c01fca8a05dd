import numpy as np
import pytest
import soundfile as sf
import torch

from asr.augment import (AugmentConfig, SpecAugment, WaveAugment, add_silence, colored_noise, shift_formants,
                         warp_frequency)
from asr.features import FeatureConfig, LogMel
from asr.utils import UserError
from conftest import steady_spectrum, tone, vowel

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


@pytest.mark.parametrize("ratio", [0.85, 1.2])
def test_formant_shift_moves_the_envelope_and_keeps_the_pitch(ratio):
    wave = vowel(120)
    out = shift_formants(wave, 16000, ratio)
    assert out.shape == wave.shape and out.dtype == wave.dtype
    corr = lambda a, b: torch.corrcoef(torch.stack([a, b]))[0, 1].item()
    target = steady_spectrum(vowel(120, formant_scale=ratio), 13)  # the same vowel from a scaled vocal tract
    # measured 0.97 (0.85) and 0.95 (1.2), against 0.68 and 0.60 for the unshifted vowel
    assert corr(steady_spectrum(out, 13), target) > 0.9 > corr(steady_spectrum(wave, 13), target) + 0.2
    spectrum = np.abs(np.fft.rfft(out.numpy())) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / 16000)
    on_harmonics = np.abs(freqs - np.round(freqs / 120) * 120) <= 6
    assert spectrum[on_harmonics].sum() > 0.95 * spectrum.sum()  # still 120 Hz: measured 0.99
    torch.testing.assert_close(shift_formants(wave, 16000, 1.0), wave, atol=1e-4, rtol=0)
    assert len(shift_formants(torch.zeros(0), 16000, ratio)) == 0
    assert len(shift_formants(wave[:100], 16000, ratio)) == 100


def test_wave_augment_shifts_formants_of_a_share_of_utterances():
    wave = vowel(150, seconds=0.3)
    always = WaveAugment(AugmentConfig(formant_shift=[0.8, 0.8], formant_prob=1.0), 16000)
    assert always.cfg.wave_enabled
    torch.testing.assert_close(always(wave, np.random.default_rng(0)), shift_formants(wave, 16000, 0.8))
    never = WaveAugment(AugmentConfig(formant_shift=[0.8, 1.2], formant_prob=0.0), 16000)
    assert torch.equal(never(wave, np.random.default_rng(0)), wave)
    half = WaveAugment(AugmentConfig(formant_shift=[0.8, 1.2]), 16000)  # formant_prob 0.5
    changed = sum(not torch.equal(half(wave, np.random.default_rng(s)), wave) for s in range(40))
    assert 10 <= changed <= 30


@pytest.mark.parametrize("snr", [5.0, 20.0])
def test_additive_noise_has_the_requested_snr(snr):
    wave = tone(1.0)
    aug = WaveAugment(AugmentConfig(noise_prob=1.0, noise_snr_db=[snr, snr]), 16000)
    out = aug(wave, np.random.default_rng(3))
    assert out.dtype == torch.float32 and out.shape == wave.shape
    noise = out - wave
    measured = 10 * torch.log10(wave.pow(2).mean() / noise.pow(2).mean())
    assert measured.item() == pytest.approx(snr, abs=0.1)


def _words(*durations, gap=0.3):
    """Tone bursts ("words") separated by ``gap`` seconds of silence, ``(samples,)``."""
    parts = [torch.cat([tone(d, freq=300 + 100 * i), torch.zeros(int(gap * 16000))]) for i, d in enumerate(durations)]
    return torch.cat(parts)[:-int(gap * 16000)]


def test_silence_is_added_at_both_ends_as_zeros_or_faint_noise():
    wave = _words(0.4, 0.5)
    out = add_silence(wave, 16000, 0.25, 0.5, None, np.random.default_rng(0))
    assert len(out) == len(wave) + 4000 + 8000
    assert (out[:4000] == 0).all() and (out[-8000:] == 0).all() and torch.equal(out[4000:-8000], wave)
    out = add_silence(wave, 16000, 0.25, 0.5, -40.0, np.random.default_rng(0))
    level = 10 * torch.log10(out[:4000].pow(2).mean() / wave.pow(2).mean())
    assert level.item() == pytest.approx(-40, abs=0.5) and torch.equal(out[4000:-8000], wave)


def test_a_pause_goes_into_a_gap_between_words_never_into_one():
    wave = _words(0.4, 0.5, 0.3)  # words are tones with a little noise; gaps are exact zeros
    for seed in range(6):
        out = add_silence(wave, 16000, 0.0, 0.0, None, np.random.default_rng(seed), pause=0.7)
        assert len(out) == len(wave) + int(0.7 * 16000)
        zero = (out == 0).int()
        runs = torch.nonzero(torch.diff(torch.cat([torch.tensor([0]), zero, torch.tensor([0])])))[:, 0].view(-1, 2)
        (a, b), = [r for r in runs.tolist() if r[1] - r[0] >= int(0.7 * 16000)]
        assert b - a == int(0.3 * 16000) + int(0.7 * 16000)  # inside one 0.3 s gap, in one piece
        assert torch.equal(torch.cat([out[:a], out[b:]]), torch.cat([wave[:a], wave[a + 4800:]]))
    one_word = tone(0.5)  # no gap: the pause goes after it
    out = add_silence(one_word, 16000, 0, 0, None, np.random.default_rng(0), pause=0.5)
    assert torch.equal(out[:8000], one_word) and len(out) == 16000 and (out[8000:] == 0).all()


def test_wave_augment_adds_one_amount_of_silence_per_batch():
    aug = WaveAugment(AugmentConfig(silence_prob=0.5, silence_seconds=[0.2, 0.4], pause_prob=0.5), 16000)
    assert aug.cfg.wave_enabled
    wave = _words(0.4, 0.5)
    added = [(len(aug(wave, np.random.default_rng(s))) - len(wave)) / 16000 for s in range(200)]
    longer = [a for a in added if a > 0]
    assert 70 < len(longer) < 130 and all(0.2 - 1e-3 <= a <= 0.4 for a in longer)
    # one batch (one batch_rng seed): the same length added to every utterance, placed differently
    aug = WaveAugment(AugmentConfig(silence_prob=1.0, silence_seconds=[0.2, 0.4], pause_prob=0.5), 16000)
    outs = [aug(wave, np.random.default_rng(s), np.random.default_rng((7, 1))) for s in range(20)]
    lengths = {len(o) for o in outs}
    assert len(lengths) <= 2 and max(lengths) - min(lengths) <= 2 and max(lengths) > len(wave)  # rounding
    starts = {int(torch.nonzero(o.abs() > 0.1)[0]) for o in outs}
    assert len(starts) > 5


def test_augmentation_is_a_function_of_the_generator_seed():
    aug = WaveAugment(AugmentConfig(speeds=[0.9, 1.0, 1.1], noise_prob=0.5, silence_prob=0.5, pause_prob=0.5), 16000)
    wave = _words(0.3, 0.3)
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


def _tone_features(freq: float, cfg: FeatureConfig) -> torch.Tensor:
    t = torch.arange(cfg.sample_rate // 2) / cfg.sample_rate
    wave = torch.sin(2 * torch.pi * freq * t)[None]
    feats, _ = LogMel(cfg)(wave, torch.tensor([wave.shape[1]]))
    return feats  # (1, frames, n_mels)


def test_frequency_warp_moves_formants_by_the_factor():
    cfg = FeatureConfig(sample_rate=8000, n_mels=40, f_max=4000.0, normalize="none")
    feats = _tone_features(1000.0, cfg)
    peak = lambda x: int(x[0].mean(0).argmax())
    assert torch.allclose(warp_frequency(feats, torch.tensor([1.0]), cfg), feats, atol=1e-5)
    # alpha 1.2: the 1 kHz tone is where 1.2 kHz sits; 0.85: where 850 Hz sits.
    for alpha, target in ((1.2, 1200.0), (0.85, 850.0)):
        warped = warp_frequency(feats, torch.tensor([alpha]), cfg)
        assert abs(peak(warped) - peak(_tone_features(target, cfg))) <= 1, alpha
        assert warped.min() >= feats.min() - 1e-5 and warped.max() <= feats.max() + 1e-5  # interpolated only
    # Per utterance, and padded (zero) frames stay zero.
    batch = torch.cat([feats, feats]).clone()
    batch[1, -5:] = 0
    out = warp_frequency(batch, torch.tensor([1.0, 1.2]), cfg)
    assert torch.allclose(out[0], feats[0], atol=1e-5) and not torch.allclose(out[1, :-5], feats[0, :-5], atol=1e-2)
    assert (out[1, -5:] == 0).all()


def test_spec_augment_warps_each_utterance_by_a_factor_in_range_only_in_training():
    cfg = FeatureConfig(sample_rate=8000, n_mels=40, f_max=4000.0, normalize="none")
    spec = SpecAugment(AugmentConfig(freq_warp=[0.9, 1.1]), cfg)
    feats = _tone_features(1000.0, cfg).repeat(8, 1, 1)
    torch.manual_seed(0)
    out = spec(feats)
    peaks = out.mean(1).argmax(1)
    low, high = (int(_tone_features(f, cfg)[0].mean(0).argmax()) for f in (900.0, 1100.0))
    assert ((peaks >= low - 1) & (peaks <= high + 1)).all() and len(set(peaks.tolist())) > 1
    spec.eval()
    assert torch.equal(spec(feats), feats)
    with pytest.raises(ValueError, match="feature configuration"):
        SpecAugment(AugmentConfig(freq_warp=[0.9, 1.1]))


@pytest.mark.parametrize("kwargs", [{"speeds": [0.0, 1.0]}, {"freq_warp": [1.1, 0.9]}, {"freq_warp": [0.5, 1.0]},
                                    {"freq_warp": [1.0]}, {"noise_prob": 1.5}, {"noise_snr_db": [30, 10]},
                                    {"noise_snr_db": [10]}, {"time_masks": -1}, {"silence_prob": -0.1},
                                    {"pause_prob": 2}, {"silence_seconds": [-1, 1]}, {"silence_seconds": [1, 0.5]},
                                    {"silence_level_db": [-30]}, {"formant_shift": [0.5, 1.0]},
                                    {"formant_shift": [1.2, 1.0]}, {"formant_shift": [0.9]}, {"formant_prob": 1.5}])
def test_bad_augment_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        AugmentConfig(**kwargs)
