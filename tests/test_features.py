import librosa
import numpy as np
import pytest
import torch

from asr.features import FeatureConfig, LogMel
from conftest import steady_spectrum, tone, vowel

pytestmark = pytest.mark.usefixtures("single_thread")


def _noise(samples: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(samples).astype(np.float32) * 0.1)


def test_defaults_are_80_mels_25ms_window_10ms_hop():
    cfg = FeatureConfig()
    assert (cfg.n_mels, cfg.win_length, cfg.hop_length, cfg.fft_size) == (80, 400, 160, 512)
    assert cfg.num_frames(16000) == 101
    assert FeatureConfig(sample_rate=8000).win_length == 200


@pytest.mark.parametrize("kwargs", [{"normalize": "cmvn"}, {"hop_ms": 0}, {"win_ms": 5, "hop_ms": 10},
                                    {"n_fft": 256}, {"n_mels": 0}, {"sample_rate": 0},
                                    {"n_mels": 40, "cepstra": 41}, {"cepstra": -1}])
def test_bad_config_is_rejected(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)


@pytest.mark.parametrize("cfg", [FeatureConfig(), FeatureConfig(n_mels=40, win_ms=32, hop_ms=8, f_min=20, f_max=7000)])
def test_log_mel_matches_librosa(cfg):
    wave = tone(0.83, freq=300)[None] + _noise(int(0.83 * 16000))[None]  # (1, samples)
    feats, frames, mask = LogMel(cfg).log_mel(wave, torch.tensor([wave.shape[1]]))
    ref = librosa.feature.melspectrogram(
        y=wave[0].double().numpy(), sr=cfg.sample_rate, n_fft=cfg.fft_size, hop_length=cfg.hop_length,
        win_length=cfg.win_length, window="hann", center=True, pad_mode="reflect", power=2.0,
        n_mels=cfg.n_mels, fmin=cfg.f_min, fmax=cfg.f_max, htk=False, norm="slaney")
    ref = np.log(np.maximum(ref, 1e-10)).T  # (frames, n_mels)
    assert feats.shape == (1, *ref.shape) and frames.item() == ref.shape[0] and mask.all()
    np.testing.assert_allclose(feats[0].numpy(), ref, atol=2e-3, rtol=0)


@pytest.mark.parametrize("normalize", ["speech", "speech_mean", "utterance", "global", "none"])
def test_features_in_a_padded_batch_equal_features_alone(normalize):
    lm = LogMel(FeatureConfig(n_mels=40, normalize=normalize))
    if normalize == "global":
        lm.mean.uniform_(-5, 0)
        lm.std.uniform_(1, 3)
    lengths = torch.tensor([16000, 7000, 4321, 300])
    waves = [_noise(int(n), seed=i) + tone(int(n) / 16000, 200 + 100 * i) for i, n in enumerate(lengths)]
    batch = torch.nn.utils.rnn.pad_sequence(waves, batch_first=True)
    feats, frames = lm(batch, lengths)
    assert feats.shape == (4, 101, 40)
    assert frames.tolist() == [101, 44, 28, 2]
    for i, w in enumerate(waves):
        alone, n = lm(w[None], lengths[i:i + 1])
        assert n.item() == frames[i]
        torch.testing.assert_close(feats[i, :n], alone[0], atol=1e-4, rtol=1e-4)
        assert (feats[i, n:] == 0).all()  # padded frames are zero
    int32, frames32 = lm(batch, lengths.int())
    assert torch.equal(int32, feats) and frames32.tolist() == frames.tolist()


def test_utterance_normalisation_gives_zero_mean_unit_variance_over_valid_frames():
    lengths = torch.tensor([12000, 5000])
    batch = torch.nn.utils.rnn.pad_sequence([_noise(12000) + tone(0.75), tone(5000 / 16000, 900)], batch_first=True)
    feats, frames = LogMel(FeatureConfig(normalize="utterance"))(batch, lengths)
    for i, n in enumerate(frames):
        valid = feats[i, :n].double()
        torch.testing.assert_close(valid.mean(0), torch.zeros(80, dtype=torch.double), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(80, dtype=torch.double), atol=1e-2, rtol=0)


def test_speech_mean_normalisation_keeps_the_bins_relative_spread(corpus):
    wave = _speech(corpus)[None]  # (1, samples)
    lengths = torch.tensor([wave.shape[1]])
    lm = LogMel(FeatureConfig(n_mels=40, normalize="speech_mean"))
    raw, _, mask = lm.log_mel(wave, lengths)
    floored, speech = lm.speech_frames(raw, mask)
    feats, _ = lm(wave, lengths)
    chosen, before = feats[0][speech[0, :, 0]].double(), floored[0][speech[0, :, 0]].double()  # (frames, n_mels)
    torch.testing.assert_close(chosen.mean(0), torch.zeros(40, dtype=torch.double), atol=1e-4, rtol=0)
    assert abs(chosen.var(0, unbiased=False).mean().item() - 1) < 1e-3  # one scale for the utterance
    ratio = chosen.std(0) / before.std(0)  # the same for every bin: their relative spread is kept
    torch.testing.assert_close(ratio, ratio.mean().expand(40), atol=1e-4, rtol=1e-4)
    per_bin, _ = LogMel(FeatureConfig(n_mels=40))(wave, lengths)  # "speech": every bin to unit variance
    spread = per_bin[0][speech[0, :, 0]].std(0)
    assert (spread - 1).abs().max() < 0.01 and chosen.std(0).std() > 0.1


def _speech(corpus) -> torch.Tensor:
    from asr.audio import load_audio

    return torch.cat([load_audio(u.audio_filepath) for u in corpus.utterances[:2]])  # (samples,) 16 kHz


@pytest.mark.parametrize("level", [0.0, 1e-3])  # digital silence; noise at -60 dBFS
def test_speech_normalisation_ignores_silence_around_the_speech(corpus, level):
    wave = _speech(corpus)
    pad = 16000  # 1 s = 100 hops: frame k of the speech is frame k + 100 of the padded wave
    noise = torch.from_numpy(np.random.default_rng(1).standard_normal(len(wave) + 2 * pad).astype(np.float32))
    padded = torch.cat([torch.zeros(pad), wave, torch.zeros(pad)]) + level * noise

    def interior(normalize, w, offset):
        feats, n = LogMel(FeatureConfig(n_mels=40, normalize=normalize))(w[None], torch.tensor([len(w)]))
        frames = len(wave) // 160 + 1
        return feats[0, offset + 3:offset + frames - 3]  # away from the edges, where STFT padding differs

    speech = (interior("speech", padded, 100) - interior("speech", wave, 0)).abs()
    utterance = (interior("utterance", padded, 100) - interior("utterance", wave, 0)).abs()
    assert utterance.mean() > 0.3  # what silence did to per-utterance statistics
    # -60 dBFS noise: 0.07-0.12 measured (eSpeak's rendering of the corpus varies a little
    # between environments), against 0.3 and more for per-utterance statistics.
    assert speech.mean() < (0.01 if level == 0 else 0.15) and speech.mean() < utterance.mean() / 3


def test_speech_frames_are_the_loud_ones_and_the_floor_bounds_silence(corpus):
    wave = _speech(corpus)
    padded = torch.cat([torch.zeros(8000), wave, torch.zeros(8000)])  # digital silence: log(1e-10) per bin
    lm = LogMel(FeatureConfig(n_mels=40))
    feats, _, mask = lm.log_mel(padded[None], torch.tensor([len(padded)]))
    floored, speech = lm.speech_frames(feats, mask)
    assert not speech[0, :45].any() and not speech[0, -45:].any()  # the silence is not speech
    assert speech[0, 50:-50].float().mean() > 0.5  # most of an eSpeak utterance pair is
    assert floored.min() >= feats.max() - 80 * np.log(10) / 10 - 1e-4 > feats.min()
    out, _ = lm(padded[None], torch.tensor([len(padded)]))
    assert out.isfinite().all() and out[0, :45].max() < -2  # silence sits far below speech
    with pytest.raises(ValueError, match="speech_db"):
        FeatureConfig(speech_db=90, floor_db=80)


def test_cepstral_smoothing_keeps_the_envelope_and_drops_the_pitch_harmonics():
    def spectrum(cepstra, f0):  # (n_mels,)
        return steady_spectrum(vowel(f0), cepstra)

    def pitch_effect(cepstra):  # how far a low and a high voice's spectra differ in shape
        d = spectrum(cepstra, 110) - spectrum(cepstra, 160)
        return (d - d.mean()).abs().mean().item()

    assert pitch_effect(13) < pitch_effect(0) / 2  # measured 0.24 against 0.59
    torch.testing.assert_close(spectrum(40, 110), spectrum(0, 110), atol=1e-4, rtol=0)  # all kept: no change
    smoothed, plain = spectrum(13, 110), spectrum(0, 110)
    assert abs(smoothed.argmax().item() - plain.argmax().item()) <= 1  # the first formant stays put
    assert torch.corrcoef(torch.stack([smoothed, plain]))[0, 1] > 0.9


@pytest.mark.parametrize("cepstra", [0, 8])  # statistics of the features the model will see
def test_fit_global_stats_normalises_the_data_it_saw(cepstra):
    lm = LogMel(FeatureConfig(n_mels=24, normalize="global", cepstra=cepstra))
    waves = torch.stack([_noise(8000, seed=s) * (s + 1) for s in range(3)])
    lengths = torch.tensor([8000, 6000, 8000])
    lm.fit_global_stats([(waves[:2], lengths[:2]), (waves[2:], lengths[2:])])
    feats, frames = lm(waves, lengths)
    valid = torch.cat([feats[i, :n] for i, n in enumerate(frames)]).double()
    torch.testing.assert_close(valid.mean(0), torch.zeros(24, dtype=torch.double), atol=1e-4, rtol=0)
    torch.testing.assert_close(valid.std(0, unbiased=False), torch.ones(24, dtype=torch.double), atol=1e-3, rtol=0)
    with pytest.raises(ValueError):
        lm.fit_global_stats([])


def test_very_short_input_does_not_crash():
    lm = LogMel(FeatureConfig())
    feats, frames = lm(_noise(100)[None], torch.tensor([100]))
    assert frames.tolist() == [1] and torch.isfinite(feats).all()
    batch = torch.nn.utils.rnn.pad_sequence([_noise(3000), _noise(200), _noise(1)], batch_first=True)
    feats, frames = lm(batch, torch.tensor([3000, 200, 1]))
    assert frames.tolist() == [19, 2, 1] and torch.isfinite(feats).all()


def test_features_stay_float32_under_autocast():
    lm = LogMel(FeatureConfig(n_mels=16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats, _ = lm(_noise(4000)[None], torch.tensor([4000]))
    assert feats.dtype == torch.float32


@pytest.mark.cuda
def test_features_run_batched_on_cuda():
    lm = LogMel(FeatureConfig())
    lengths = torch.tensor([16000, 7000])
    batch = torch.nn.utils.rnn.pad_sequence([_noise(16000), _noise(7000, 1)], batch_first=True)
    cpu, _ = lm(batch, lengths)
    gpu, frames = lm.cuda()(batch.cuda(), lengths.cuda())
    assert gpu.is_cuda and frames.is_cuda
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-3, rtol=1e-3)
