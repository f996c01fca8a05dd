"""Training-time augmentation, off at evaluation.

- :class:`WaveAugment`: formant shifting (:func:`shift_formants`), speed perturbation
  (resampling), silence or faint noise before, after and between the words
  (:func:`add_silence`), and additive noise at a random SNR,
  applied per utterance inside the data-loading workers, with randomness drawn from a
  per-item seed so a resumed run sees the same augmented audio.
- :class:`SpecAugment`: vocal-tract-length perturbation (:func:`warp_frequency`) and time
  and frequency masks (torchaudio) on the feature batch, on the model's device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import librosa
import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF
from torch import nn

from asr.features import FeatureConfig
from asr.segment import speech_intervals


@dataclass
class AugmentConfig:
    """All off by default. ``speeds`` e.g. ``[0.9, 1.0, 1.1]``; ``noise_dir`` is a folder of
    noise recordings (coloured synthetic noise when empty); widths are in feature frames
    and mel bins.

    ``silence_prob``: share of batches whose utterances get ``silence_seconds`` (a random
    length in that range, drawn once per batch: padded CPU training pays for the longest
    utterance of a batch) of extra silence, split at random between before and after the
    speech; ``pause_prob``: share of those utterances where a random part of it becomes a
    pause between two words instead (where the audio already has a gap). Silence is
    digital zero or faint coloured noise ``silence_level_db`` below the speech (see
    :func:`add_silence`), so the model learns that neither is speech.

    ``freq_warp``: ``[low, high]`` range of vocal-tract-length warp factors (e.g. ``[0.9,
    1.1]``), one drawn per utterance: the spectral envelope moves up or down the frequency
    axis as for a shorter or longer vocal tract, without changing the speaking rate
    (:func:`warp_frequency`); empty: off.

    ``formant_shift``: ``[low, high]`` range of formant ratios (e.g. ``[0.85, 1.25]``): a
    share ``formant_prob`` of the utterances get their spectral envelope scaled along the
    frequency axis by a ratio drawn log-uniformly from the range, in the waveform, with
    pitch and timing kept (:func:`shift_formants`); a speaker with another vocal tract
    length. Empty: off."""

    speeds: list[float] = field(default_factory=list)
    noise_prob: float = 0.0
    noise_snr_db: list[float] = field(default_factory=lambda: [10.0, 30.0])
    noise_dir: str = ""
    silence_prob: float = 0.0
    silence_seconds: list[float] = field(default_factory=lambda: [0.2, 2.0])
    pause_prob: float = 0.0
    silence_level_db: list[float] = field(default_factory=lambda: [-70.0, -30.0])
    freq_warp: list[float] = field(default_factory=list)
    formant_shift: list[float] = field(default_factory=list)
    formant_prob: float = 0.5
    time_masks: int = 0
    time_mask_width: int = 40
    freq_masks: int = 0
    freq_mask_width: int = 15

    def __post_init__(self) -> None:
        if any(not s > 0 for s in self.speeds):
            raise ValueError(f"augment.speeds={list(self.speeds)}; speeds must be positive, e.g. [0.9, 1.0, 1.1]")
        for name in ("noise_prob", "silence_prob", "pause_prob", "formant_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name}={getattr(self, name)}; expected a probability in [0, 1]")
        if self.freq_warp and (len(self.freq_warp) != 2 or not 0.8 <= self.freq_warp[0] <= self.freq_warp[1] <= 1.25):
            raise ValueError(f"augment.freq_warp={list(self.freq_warp)}; expected [low, high] warp factors within "
                             "[0.8, 1.25], e.g. [0.9, 1.1], or [] for none")
        if self.formant_shift and (len(self.formant_shift) != 2
                                   or not 0.7 <= self.formant_shift[0] <= self.formant_shift[1] <= 1.4):
            raise ValueError(f"augment.formant_shift={list(self.formant_shift)}; expected [low, high] formant ratios "
                             "within [0.7, 1.4], e.g. [0.85, 1.25], or [] for none")
        for name, unit in (("noise_snr_db", "dB"), ("silence_seconds", "seconds"), ("silence_level_db", "dB")):
            pair = list(getattr(self, name))
            if len(pair) != 2 or pair[0] > pair[1] or (unit == "seconds" and pair[0] < 0):
                raise ValueError(f"augment.{name}={pair}; expected [low, high] in {unit}")
        if min(self.time_masks, self.time_mask_width, self.freq_masks, self.freq_mask_width) < 0:
            raise ValueError("augment: mask counts and widths must not be negative")

    @property
    def wave_enabled(self) -> bool:
        return bool(self.speeds) or self.noise_prob > 0 or self.silence_prob > 0 or bool(self.formant_shift)

    @property
    def spec_enabled(self) -> bool:
        return self.time_masks > 0 or self.freq_masks > 0 or bool(self.freq_warp)


def colored_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """White, pink or brown noise (1/f^beta, beta in {0, 1, 2}), unit variance, ``(n,)``."""
    beta = rng.choice([0.0, 1.0, 2.0])
    spectrum = rng.normal(size=n // 2 + 1) + 1j * rng.normal(size=n // 2 + 1)
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum / freqs ** (beta / 2), n)
    return (noise / (noise.std() + 1e-12)).astype(np.float32)


def silence(n: int, level: float | None, rng: np.random.Generator) -> torch.Tensor:
    """``(n,)`` float32: digital zero when ``level`` is None, else coloured noise of RMS
    ``level`` (linear amplitude)."""
    if level is None or n == 0:
        return torch.zeros(n)
    return torch.from_numpy(colored_noise(n, rng)) * level


def add_silence(wave: torch.Tensor, sample_rate: int, before: float, after: float, level_db: float | None,
                rng: np.random.Generator, pause: float = 0.0) -> torch.Tensor:
    """``wave (samples,)`` with ``before`` and ``after`` seconds of silence at its ends, and a
    ``pause`` of that many seconds inserted in one of its gaps between words (added after it
    instead if it has no gap of 50 ms at 35 dB below its peak). The silence is digital zero for
    ``level_db=None``, else coloured noise ``level_db`` dB (negative) relative to the RMS of
    ``wave``."""
    level = None if level_db is None else float(wave.pow(2).mean().sqrt()) * 10 ** (level_db / 20)
    if pause > 0 and len(wave) > 0:
        speech = speech_intervals(wave.numpy(), sample_rate)
        gaps = [(a + b) // 2 for a, b in zip(speech[:-1, 1], speech[1:, 0]) if b - a >= sample_rate // 20]
        if gaps:
            at = int(gaps[rng.integers(len(gaps))])
            wave = torch.cat([wave[:at], silence(int(pause * sample_rate), level, rng), wave[at:]])
            pause = 0.0
    after += pause
    return torch.cat([silence(int(before * sample_rate), level, rng), wave,
                      silence(int(after * sample_rate), level, rng)])


def shift_formants(wave: torch.Tensor, sample_rate: int, ratio: float, lifter_ms: float = 2.0,
                   max_gain_db: float = 24.0) -> torch.Tensor:
    """Scale the formants of ``wave (samples,)`` by ``ratio``, keeping its pitch and timing.

    Each 32 ms STFT frame's spectral envelope is its log magnitude smoothed by keeping the
    cepstrum below ``lifter_ms`` (under the pitch period of voices up to 500 Hz); the frame
    is multiplied by the envelope read at ``frequency / ratio`` over the envelope itself,
    so the harmonics (pitch) stay where they are and their amplitudes follow the moved
    formants. Gains are capped at ``max_gain_db`` either way (bands with no energy stay
    empty). Returns ``(samples,)``; ``ratio=1`` returns the input up to rounding.
    """
    if len(wave) == 0:
        return wave
    n_fft = 1 << math.ceil(math.log2(0.032 * sample_rate))
    hop = n_fft // 4
    window = torch.hann_window(n_fft, dtype=wave.dtype, device=wave.device)
    spec = torch.stft(wave, n_fft, hop, window=window, pad_mode="constant", return_complex=True)  # (bins, frames)
    cepstrum = torch.fft.irfft(spec.abs().clamp_min(1e-8).log(), n=n_fft, dim=0)  # (n_fft, frames)
    keep = max(1, int(lifter_ms * sample_rate / 1000))
    cepstrum[keep:n_fft - keep + 1] = 0
    envelope = torch.fft.rfft(cepstrum, dim=0).real  # (bins, frames), natural log
    bins = envelope.shape[0]
    source = (torch.arange(bins, dtype=wave.dtype, device=wave.device) / ratio).clamp(max=bins - 1)
    lo = source.floor().long()
    w = (source - lo)[:, None]
    moved = envelope[lo] * (1 - w) + envelope[(lo + 1).clamp(max=bins - 1)] * w
    cap = max_gain_db / 20 * math.log(10)
    gain = (moved - envelope).clamp(-cap, cap).exp()
    return torch.istft(spec * gain, n_fft, hop, window=window, length=len(wave))


class WaveAugment:
    """``wave (samples,) -> wave`` at the same sample rate; picklable for worker processes."""

    def __init__(self, cfg: AugmentConfig, sample_rate: int):
        self.cfg, self.sample_rate = cfg, sample_rate
        self.noise_files = sorted(str(p) for p in Path(cfg.noise_dir).rglob("*")
                                  if p.suffix.lower() in (".wav", ".flac", ".ogg")) if cfg.noise_dir else []
        if cfg.noise_dir and not self.noise_files:
            from asr.utils import UserError

            raise UserError(f"augment.noise_dir={cfg.noise_dir}: no .wav, .flac or .ogg files found there; "
                            "point it at a folder of noise recordings, or leave it empty for synthetic noise")

    def _noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        if not self.noise_files:
            return colored_noise(n, rng)
        from asr.audio import load_audio

        noise = load_audio(self.noise_files[rng.integers(len(self.noise_files))], self.sample_rate).numpy()
        noise = np.tile(noise, math.ceil(n / len(noise)))
        start = rng.integers(len(noise) - n + 1)
        noise = noise[start:start + n]
        return noise / (noise.std() + 1e-12)

    def __call__(self, wave: torch.Tensor, rng: np.random.Generator,
                 batch_rng: np.random.Generator | None = None) -> torch.Tensor:
        """``rng`` draws for this utterance; ``batch_rng``, seeded alike for every utterance
        of a batch, draws the amount of added silence (``rng`` when None)."""
        batch_rng = rng if batch_rng is None else batch_rng
        if self.cfg.formant_shift and rng.random() < self.cfg.formant_prob:
            low, high = self.cfg.formant_shift
            wave = shift_formants(wave, self.sample_rate, math.exp(rng.uniform(math.log(low), math.log(high))))
        if self.cfg.speeds:
            speed = float(rng.choice(self.cfg.speeds))
            if speed != 1.0:
                # Playing ``speed`` times faster = resampling to rate / speed at the same rate.
                new = int(round(self.sample_rate / speed / 100)) * 100
                g = math.gcd(self.sample_rate, new)
                wave = AF.resample(wave, self.sample_rate // g, new // g)
        power = wave.pow(2).mean().clamp_min(1e-10)  # of the speech, before any silence
        if self.cfg.silence_prob > 0 and batch_rng.random() < self.cfg.silence_prob:
            extra = batch_rng.uniform(*self.cfg.silence_seconds)
            pause = extra * rng.random() if rng.random() < self.cfg.pause_prob else 0.0
            before = (extra - pause) * rng.random()
            level = None if rng.random() < 0.25 else rng.uniform(*self.cfg.silence_level_db)  # 1/4 digital zero
            wave = add_silence(wave, self.sample_rate, before, extra - pause - before, level, rng, pause)
        if self.cfg.noise_prob > 0 and rng.random() < self.cfg.noise_prob:
            snr = rng.uniform(*self.cfg.noise_snr_db)
            noise = torch.from_numpy(self._noise(len(wave), rng))
            wave = wave + noise * (power / 10 ** (snr / 10)).sqrt()
        return wave


def warp_frequency(features: torch.Tensor, alphas: torch.Tensor, features_cfg: FeatureConfig) -> torch.Tensor:
    """Vocal-tract-length perturbation of log-mel features (Jaitly and Hinton, 2013).

    Output frequency ``f`` takes the value at ``f / alpha`` below a boundary at 80% of the
    top frequency (times ``min(1, alpha)``), and a straight line joins the boundary to the
    top above it, so the band edges stay where they are. ``alpha > 1`` moves formants up
    (a shorter vocal tract). Bins are interpolated linearly on the mel axis.

    ``features (batch, frames, n_mels), alphas (batch,) -> (batch, frames, n_mels)``.
    """
    cfg = features_cfg
    f_max = cfg.f_max or cfg.sample_rate / 2
    edges = librosa.mel_frequencies(cfg.n_mels + 2, fmin=cfg.f_min, fmax=f_max, htk=False)  # slaney, as LogMel
    centers = torch.tensor(edges[1:-1], dtype=torch.float64, device=features.device)  # (n_mels,) Hz
    alphas = alphas.to(torch.float64)[:, None]  # (batch, 1)
    bound = 0.8 * f_max * alphas.clamp(max=1.0)
    slope = (f_max - bound / alphas) / (f_max - bound)
    source = torch.where(centers <= bound, centers / alphas, bound / alphas + (centers - bound) * slope)
    # Fractional index of each source frequency among the bin centres (mel axis, slaney).
    mel_centers = torch.tensor(librosa.hz_to_mel(edges[1:-1], htk=False), dtype=torch.float64, device=features.device)
    mel_source = torch.tensor(librosa.hz_to_mel(source.cpu().numpy(), htk=False), dtype=torch.float64,
                              device=features.device)
    step = mel_centers[1] - mel_centers[0] if cfg.n_mels > 1 else 1.0
    pos = ((mel_source - mel_centers[0]) / step).clamp(0, cfg.n_mels - 1)  # (batch, n_mels)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=cfg.n_mels - 1)
    w = (pos - lo).to(features.dtype)[:, None, :]  # (batch, 1, n_mels)
    frames = features.shape[1]
    take = lambda idx: features.gather(2, idx[:, None, :].expand(-1, frames, -1))
    return take(lo) * (1 - w) + take(hi) * w


class SpecAugment(nn.Module):
    """``features (batch, frames, n_mels) -> features``: vocal-tract-length warping, then
    masks, drawn independently per utterance (from torch's RNG, saved in checkpoints)."""

    def __init__(self, cfg: AugmentConfig, features_cfg: FeatureConfig | None = None):
        super().__init__()
        if cfg.freq_warp and features_cfg is None:
            raise ValueError("augment.freq_warp needs the feature configuration (mel band edges)")
        self.cfg, self.features_cfg = cfg, features_cfg
        self.time = torchaudio.transforms.TimeMasking(cfg.time_mask_width, iid_masks=True)
        self.freq = torchaudio.transforms.FrequencyMasking(cfg.freq_mask_width, iid_masks=True)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return features
        if self.cfg.freq_warp:
            low, high = self.cfg.freq_warp
            alphas = low + (high - low) * torch.rand(features.shape[0], device=features.device)
            features = warp_frequency(features, alphas, self.features_cfg)
        x = features.transpose(1, 2).unsqueeze(1)  # (batch, 1, n_mels, frames)
        for _ in range(self.cfg.freq_masks):
            x = self.freq(x)
        for _ in range(self.cfg.time_masks):
            x = self.time(x)
        return x.squeeze(1).transpose(1, 2)
