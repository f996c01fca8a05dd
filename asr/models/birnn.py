"""``birnn``: stacked feature frames -> bidirectional RNN layers -> per-step log-probabilities.

The model of every checkpoint written before :mod:`asr.models` existed (their model
config has no ``name``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from asr.models.rnn import RecurrentConfig, RecurrentCTC


@dataclass
class BiRNNConfig(RecurrentConfig):
    """``subsample`` stacks that many feature frames into one step (3: 30 ms per step at a
    10 ms hop)."""

    name: str = "birnn"
    subsample: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.subsample < 1:
            raise ValueError(f"model.subsample={self.subsample}; expected at least 1")

    @property
    def frames_per_step(self) -> int:
        return self.subsample

    def output_lengths(self, frame_lengths):
        """``ceil(frames / subsample)`` steps (an int or a tensor, as given)."""
        return (frame_lengths + self.subsample - 1) // self.subsample


class BiRNNCTC(RecurrentCTC):
    """Bidirectional RNN encoder over stacked frames, with a linear CTC classifier.

    ``forward(features (batch, frames, input_dim), lengths (batch,))
    -> (log_probs (batch, ceil(frames / subsample), vocab_size) float32, out_lengths (batch,))``.
    """

    config_class = BiRNNConfig

    def __init__(self, cfg: BiRNNConfig, input_dim: int, vocab_size: int):
        super().__init__(cfg, input_dim * cfg.subsample, vocab_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = stack_frames(features, self.cfg.subsample)  # (batch, steps, input_dim * subsample)
        lengths = self.output_lengths(lengths)
        return self.classify(self.recurrent(x, lengths)), lengths  # (batch, steps, vocab)


def stack_frames(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Concatenate each ``factor`` consecutive frames into one (subsampling in time).

    ``x (batch, frames, dim) -> (batch, ceil(frames / factor), dim * factor)``; the last
    step is zero-padded.
    """
    if factor == 1:
        return x
    batch, frames, dim = x.shape
    steps = (frames + factor - 1) // factor
    # Pad by factor - 1 zero frames, then keep whole steps: no branch on the length, so a
    # traced copy (ONNX, TorchScript) stays right for every length.
    x = torch.cat([x, x.new_zeros(batch, factor - 1, dim)], 1)[:, :steps * factor]
    return x.reshape(batch, steps, dim * factor)
