"""Log-mel features, computed batched on the model's device."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torchaudio
from torch import nn

NORMALIZATIONS = ("speech", "speech_mean", "utterance", "global", "none")


@dataclass
class FeatureConfig:
    """Log-mel front end. Windows are in milliseconds; ``n_fft`` 0 means the next power
    of two at or above the window. ``normalize``:

    - ``speech``: mean/variance per utterance and mel bin over its speech frames only
      (frames within ``speech_db`` dB of the utterance's loudest frame), with every bin
      floored ``floor_db`` dB below the loudest bin: per-recording gain and channel
      normalisation that does not move when silence or faint noise surrounds the speech;
    - ``speech_mean``: the same speech frames, but only the mean is taken per bin; the
      variance is one figure per utterance over all bins, so the bins keep their relative
      dynamics (per-bin variance over a word or two also scales up steady bins: hiss,
      a channel's empty band);
    - ``utterance``: mean/variance per utterance and mel bin over all frames (silence
      included: an utterance padded with silence gets other features);
    - ``global``: statistics of the training set, kept in the checkpoint;
    - ``none``.

    ``cepstra`` > 0 smooths each frame's log-mel spectrum along the mel axis by keeping its
    first ``cepstra`` cepstral coefficients (orthonormal DCT-II, as MFCCs are computed) and
    transforming back: the spectral envelope without the ripple of the voice's pitch
    harmonics, which 25 ms windows resolve in the low bins. The features keep their
    ``n_mels`` bins, so the model's input and SpecAugment's bin masks are unchanged.
    0 keeps the log-mel spectrum as it is."""

    sample_rate: int = 16000
    n_mels: int = 80
    win_ms: float = 25.0
    hop_ms: float = 10.0
    n_fft: int = 0
    f_min: float = 0.0
    f_max: float | None = None
    normalize: str = "speech"
    speech_db: float = 30.0
    floor_db: float = 80.0
    cepstra: int = 0

    def __post_init__(self) -> None:
        if self.normalize not in NORMALIZATIONS:
            raise ValueError(f"features.normalize={self.normalize!r}; expected one of {NORMALIZATIONS}")
        if self.hop_ms <= 0 or self.win_ms < self.hop_ms:
            raise ValueError(f"features: need 0 < hop_ms <= win_ms, got hop {self.hop_ms} win {self.win_ms}")
        if self.sample_rate <= 0 or self.n_mels < 1 or self.hop_length < 1:
            raise ValueError("features: sample_rate, n_mels and the hop (in samples) must be positive")
        if not 0 < self.speech_db <= self.floor_db:
            raise ValueError(f"features: need 0 < speech_db <= floor_db, got {self.speech_db} and {self.floor_db}")
        if not 0 <= self.cepstra <= self.n_mels:
            raise ValueError(f"features.cepstra={self.cepstra}; expected 0 (no smoothing) to n_mels={self.n_mels}")
        if self.n_fft and self.n_fft < self.win_length:
            raise ValueError(f"features.n_fft={self.n_fft} is shorter than the {self.win_length}-sample window; "
                             "use n_fft >= win_length, or 0 for the next power of two")

    @property
    def win_length(self) -> int:
        return int(round(self.sample_rate * self.win_ms / 1000))

    @property
    def hop_length(self) -> int:
        return int(round(self.sample_rate * self.hop_ms / 1000))

    @property
    def fft_size(self) -> int:
        return self.n_fft or 1 << (self.win_length - 1).bit_length()

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples (centred STFT)."""
        return num_samples // self.hop_length + 1


class LogMel(nn.Module):
    """Waveforms to normalised log-mel features.

    ``forward(waves (batch, samples), lengths (batch,)) -> (features (batch, frames, n_mels), frame_lengths (batch,))``.
    Padded frames are zero. Runs in float32 even under autocast.
    """

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.fft_size, win_length=cfg.win_length,
            hop_length=cfg.hop_length, f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels,
            power=2.0, center=False, norm="slaney", mel_scale="slaney",
        )  # centring is done per utterance in _center
        # |X|^2 as re^2 + im^2 of the complex STFT: measurably cheaper than abs().pow(2).
        self.mel.spectrogram.power = None
        self.register_buffer("mean", torch.zeros(cfg.n_mels))
        self.register_buffer("std", torch.ones(cfg.n_mels))
        # Projection onto the first `cepstra` DCT-II basis vectors (n_mels, n_mels); not saved:
        # it follows from the config.
        smoother = None
        if cfg.cepstra:
            dct = torchaudio.functional.create_dct(cfg.cepstra, cfg.n_mels, norm="ortho")  # (n_mels, cepstra)
            smoother = dct @ dct.T
        self.register_buffer("smoother", smoother, persistent=False)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.div(lengths, self.cfg.hop_length, rounding_mode="floor") + 1

    def _center(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Pad ``n_fft // 2`` samples at both ends of every utterance by reflection, as a
        centred STFT (``center=True, pad_mode="reflect"``) does to one utterance alone, so a
        padded batch gives each utterance the features it has on its own.

        ``waves (batch, samples) -> (batch, samples + 2 * (n_fft // 2))``; samples past an
        utterance's own padding are zero.
        """
        pad = self.cfg.fft_size // 2
        batch, samples = waves.shape
        k = torch.arange(pad, device=waves.device)
        n = lengths.to(waves.device, torch.long).view(-1, 1)
        out = waves.new_zeros(batch, samples + 2 * pad)
        out[:, pad:pad + samples] = waves
        # Mirror images of the start and of each utterance's own end (clamped: an utterance
        # shorter than the padding, which torch.stft refuses, gets a partial reflection).
        out[:, :pad] = waves.gather(1, torch.minimum(pad - k, n - 1).clamp(min=0))
        src = (n - 2 - k).clamp(min=0)  # (batch, pad)
        return out.scatter_(1, n + pad + k, waves.gather(1, src))

    def log_mel(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Unnormalised log-mel: ``(features (batch, frames, n_mels), frame_lengths, mask (batch, frames, 1))``."""
        with torch.autocast(waves.device.type, enabled=False):
            centered = self._center(waves.float(), lengths)  # (batch, samples + n_fft)
            spec = self.mel.spectrogram(centered)  # (batch, freqs, frames) complex
            power = self.mel.mel_scale(spec.real.square() + spec.imag.square())  # (batch, n_mels, frames)
            feats = power.clamp_min(1e-10).log().transpose(1, 2)  # (batch, frames, n_mels)
        frames = self.frame_lengths(lengths).clamp_max(feats.shape[1])  # on the device of lengths
        mask = (torch.arange(feats.shape[1], device=feats.device)[None, :] < frames.to(feats.device)[:, None])
        mask = mask.unsqueeze(-1)
        return feats, frames, mask

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frames, mask = self.log_mel(waves, lengths)
        weights = mask  # the frames whose statistics normalise the utterance
        if self.cfg.normalize in ("speech", "speech_mean"):
            feats, weights = self.speech_frames(feats, mask)
        feats = self.smooth(feats)
        if self.cfg.normalize == "global":
            feats = (feats - self.mean) / self.std
        elif self.cfg.normalize != "none":
            feats = _normalize(feats, weights, per_bin_variance=self.cfg.normalize != "speech_mean")
        return feats.masked_fill(~mask, 0.0), frames

    def smooth(self, feats: torch.Tensor) -> torch.Tensor:
        """Keep the first ``cepstra`` cepstral coefficients of each frame of the log-mel
        ``feats (batch, frames, n_mels)`` (same shape back); unchanged when ``cepstra`` is 0."""
        return feats if self.smoother is None else feats @ self.smoother

    def speech_frames(self, feats: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Floor the log-mel ``feats (batch, frames, n_mels)`` at ``floor_db`` below each
        utterance's loudest bin, and mark its speech frames: those whose energy is within
        ``speech_db`` of its loudest frame. Returns ``(feats, speech (batch, frames, 1))``;
        ``speech`` is within ``mask`` and holds at least each utterance's loudest frame."""
        nats = math.log(10) / 10  # 1 dB in natural-log units of power
        peak = feats.masked_fill(~mask, -math.inf).amax((1, 2), keepdim=True)  # (batch, 1, 1)
        feats = torch.maximum(feats, peak - self.cfg.floor_db * nats)
        energy = feats.logsumexp(2, keepdim=True).masked_fill(~mask, -math.inf)  # (batch, frames, 1)
        loudest = energy.amax(1, keepdim=True)
        return feats, mask & (energy >= loudest - self.cfg.speech_db * nats)

    @torch.no_grad()
    def fit_global_stats(self, batches) -> None:
        """Set the global mean and standard deviation from ``(waves, lengths)`` batches."""
        total = torch.zeros(self.cfg.n_mels, dtype=torch.float64)
        sq = torch.zeros_like(total)
        count = 0
        for waves, lengths in batches:
            feats, _, mask = self.log_mel(waves.to(self.mean.device), lengths.to(self.mean.device))
            feats = self.smooth(feats)
            valid = feats[mask.squeeze(-1)].double().cpu()  # (frames, n_mels)
            total += valid.sum(0)
            sq += (valid ** 2).sum(0)
            count += valid.shape[0]
        if count == 0:
            raise ValueError("no frames to estimate global feature statistics from")
        mean = total / count
        self.mean.copy_(mean.float())
        self.std.copy_((sq / count - mean ** 2).clamp_min(1e-8).sqrt().float())


def _normalize(feats: torch.Tensor, weights: torch.Tensor, per_bin_variance: bool = True) -> torch.Tensor:
    """Zero mean per utterance and bin, over the frames where ``weights (batch, frames, 1)``
    is true, and unit variance per bin (or, without ``per_bin_variance``, one variance per
    utterance over all its bins): ``feats (batch, frames, n_mels) -> same shape``."""
    w = weights.to(feats.dtype)
    n = w.sum(1, keepdim=True).clamp_min(1)
    mean = (feats * w).sum(1, keepdim=True) / n
    var = (((feats - mean) * w) ** 2).sum(1, keepdim=True) / n  # (batch, 1, n_mels)
    if not per_bin_variance:
        var = var.mean(2, keepdim=True)  # (batch, 1, 1)
    return (feats - mean) / (var + 1e-5).sqrt()
