"""``ds2``: the DeepSpeech2 front end (Amodei et al., 2016; as in deepspeech.pytorch) -- two
2-D convolutions over (time, frequency) with batch norm and a clipped activation -- then
bidirectional RNN layers and a linear CTC classifier.

Padding never leaks into an utterance's output: each convolution's input is zero past the
utterance's length (as the convolution's own zero padding is when it runs alone), batch
norm's training statistics count only the steps inside an utterance, and the recurrent
layers pack sequences as :class:`asr.models.birnn.BiRNNCTC`'s do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from asr.models.rnn import RecurrentConfig, RecurrentCTC

# (time, frequency) kernels of the two convolutions, DeepSpeech2's; each is padded by half
# its kernel. The first has the time stride; both halve the frequency axis.
KERNELS = ((11, 41), (11, 21))
FREQ_STRIDE = 2
TIME_STRIDES = (2, 3)
ACTIVATIONS = {"hardtanh": lambda: nn.Hardtanh(0.0, 20.0), "relu": nn.ReLU}


@dataclass
class DS2Config(RecurrentConfig):
    """``time_stride``: feature frames per output step (2: 20 ms at a 10 ms hop, or 3);
    ``conv_channels``: of each convolution; ``activation`` after each batch norm:
    ``hardtanh`` (``min(max(x, 0), 20)``, DeepSpeech2's clipped ReLU) or ``relu``."""

    name: str = "ds2"
    conv_channels: int = 32
    time_stride: int = 2
    activation: str = "hardtanh"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.time_stride not in TIME_STRIDES:
            raise ValueError(f"model.time_stride={self.time_stride}; expected one of {TIME_STRIDES}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"model.activation={self.activation!r}; expected one of {sorted(ACTIVATIONS)}")
        if self.conv_channels < 1:
            raise ValueError(f"model.conv_channels={self.conv_channels}; expected at least 1")

    @property
    def frames_per_step(self) -> int:
        return self.time_stride

    def time_strides(self) -> tuple[int, ...]:
        """The time stride of each convolution."""
        return (self.time_stride,) + (1,) * (len(KERNELS) - 1)

    def output_lengths(self, frame_lengths):
        """Steps after the convolutions (``ceil(frames / time_stride)``; an int or a tensor, as given)."""
        for (kernel, _), stride in zip(KERNELS, self.time_strides()):
            frame_lengths = _conv_size(frame_lengths, kernel, stride)
        return frame_lengths


class DS2CTC(RecurrentCTC):
    """DeepSpeech2 convolutions, bidirectional RNN layers, linear CTC classifier.

    ``forward(features (batch, frames, n_mels), lengths (batch,))
    -> (log_probs (batch, ceil(frames / time_stride), vocab_size) float32, out_lengths (batch,))``.
    """

    config_class = DS2Config

    def __init__(self, cfg: DS2Config, input_dim: int, vocab_size: int):
        conv = ConvFrontEnd(cfg, input_dim)
        super().__init__(cfg, conv.output_dim, vocab_size)
        self.conv = conv

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = self.conv(features, lengths)  # (batch, steps, channels * freq)
        return self.classify(self.recurrent(x, lengths)), lengths  # (batch, steps, vocab)


class ConvFrontEnd(nn.Module):
    """``forward(features (batch, frames, n_mels), lengths (batch,))
    -> (x (batch, steps, output_dim), steps (batch,))``, zero past each utterance's steps."""

    def __init__(self, cfg: DS2Config, n_mels: int):
        super().__init__()
        channels = [1] + [cfg.conv_channels] * len(KERNELS)
        self.strides = cfg.time_strides()
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, kernel, stride=(stride, FREQ_STRIDE), padding=(kernel[0] // 2, kernel[1] // 2),
                      bias=False)
            for c_in, c_out, kernel, stride in zip(channels, channels[1:], KERNELS, self.strides))
        self.norms = nn.ModuleList(MaskedBatchNorm(cfg.conv_channels) for _ in KERNELS)
        self.activation = ACTIVATIONS[cfg.activation]()
        freq = n_mels
        for _, kernel in KERNELS:
            freq = _conv_size(freq, kernel, FREQ_STRIDE)
        self.output_dim = cfg.conv_channels * freq

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = features.unsqueeze(1)  # (batch, 1, frames, n_mels)
        here = lengths.to(x.device)  # one copy for the masks; the lengths returned stay where they were
        valid = _valid(x, here)
        for conv, norm, (kernel, _), stride in zip(self.convs, self.norms, KERNELS, self.strides):
            x = conv(x.masked_fill(~valid, 0.0))  # (batch, channels, steps, freq)
            lengths, here = _conv_size(lengths, kernel, stride), _conv_size(here, kernel, stride)
            valid = _valid(x, here)
            x = self.activation(norm(x, valid))
        x = x.masked_fill(~valid, 0.0)
        return x.transpose(1, 2).flatten(2), lengths  # (batch, steps, channels * freq)


class MaskedBatchNorm(nn.BatchNorm2d):
    """Batch norm whose training statistics (and so the running estimates) are over the
    valid steps only, however much padding the batch holds.

    ``forward(x (batch, channels, steps, freq), valid (batch, 1, steps, 1) bool) -> float32, x's shape``.
    """

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.float()  # statistics in float32 under autocast too
        mean, var = self._batch_statistics(x, valid) if self.training else (self.running_mean, self.running_var)
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (x - mean[:, None, None]) * scale[:, None, None] + self.bias[:, None, None]

    def _batch_statistics(self, x: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel mean and (biased) variance over the valid steps; updates the running ones."""
        w = valid.to(x.dtype)
        n = w.sum() * x.shape[3]  # values per channel
        mean = (x * w).sum((0, 2, 3)) / n
        var = ((x - mean[:, None, None]).square() * w).sum((0, 2, 3)) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var * n / (n - 1).clamp_min(1), self.momentum)
        return mean, var


def _conv_size(size, kernel: int, stride: int):
    """Outputs of a convolution padded by ``kernel // 2`` at both ends, over ``size`` inputs."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``(batch, 1, steps, 1)``: true where a step of ``x (batch, channels, steps, freq)`` is
    inside its utterance (``lengths`` on ``x``'s device)."""
    steps = torch.arange(x.shape[2], device=x.device)
    return (steps[None, :] < lengths[:, None])[:, None, :, None]
