"""The acoustic model: stacked features -> bidirectional RNN layers -> per-frame log-probabilities."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from asr.features import stack_frames

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
PACKING = ("auto", "always", "never")


@dataclass
class ModelConfig:
    """``subsample`` stacks that many feature frames into one encoder step (3: 30 ms per
    step at a 10 ms hop). ``pack``: ``auto`` packs sequences on CUDA, and on the CPU at
    inference (eval mode) but not in training (see :meth:`BiRNNCTC.forward`)."""

    rnn_type: str = "lstm"
    hidden_size: int = 320
    num_layers: int = 3
    dropout: float = 0.1
    layer_norm: bool = False
    subsample: int = 3
    pack: str = "auto"

    def __post_init__(self) -> None:
        if self.rnn_type not in RNN_TYPES:
            raise ValueError(f"model.rnn_type={self.rnn_type!r}; expected one of {sorted(RNN_TYPES)}")
        if self.pack not in PACKING:
            raise ValueError(f"model.pack={self.pack!r}; expected one of {PACKING}")
        if self.num_layers < 1 or self.hidden_size < 1 or self.subsample < 1:
            raise ValueError("model: num_layers, hidden_size and subsample must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout={self.dropout}; expected 0 <= dropout < 1")


class BiRNNCTC(nn.Module):
    """Bidirectional RNN encoder with a linear CTC classifier.

    ``forward(features (batch, frames, input_dim), lengths (batch,))
    -> (log_probs (batch, frames / subsample, vocab_size) float32, out_lengths (batch,))``.
    """

    def __init__(self, cfg: ModelConfig, input_dim: int, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        rnn = RNN_TYPES[cfg.rnn_type]
        dims = [input_dim * cfg.subsample] + [2 * cfg.hidden_size] * (cfg.num_layers - 1)
        self.rnns = nn.ModuleList(rnn(d, cfg.hidden_size, batch_first=True, bidirectional=True) for d in dims)
        self.norms = nn.ModuleList(
            nn.LayerNorm(2 * cfg.hidden_size) if cfg.layer_norm else nn.Identity() for _ in dims)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(2 * cfg.hidden_size, vocab_size)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, lengths = stack_frames(features, lengths, self.cfg.subsample)  # (batch, steps, input_dim * subsample)
        # Packing keeps padding out of the backward direction, so an utterance's output does
        # not depend on what it is batched with, and cuDNN runs packed batches fast. On the
        # CPU, training through pack_padded_sequence is several times slower than the padded
        # batch (README, "Training"), so CPU training runs the padded batch and relies on
        # length-bucketed batches to keep padding low (CTC reads only the true lengths). CPU
        # inference packs (its cost: bench/packing.py), as transcripts and WER must not
        # change with the batch size.
        pack = self.cfg.pack == "always" or (self.cfg.pack == "auto" and (x.is_cuda or not self.training))
        total = x.shape[1]
        if pack:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        with rnn_precision(x.device if isinstance(x, torch.Tensor) else x.data.device):
            for i, (rnn, norm) in enumerate(zip(self.rnns, self.norms)):
                if i:
                    x = _map(x, self.dropout)
                x, _ = rnn(x)
                x = _map(x, norm)
        if pack:
            x, _ = pad_packed_sequence(x, batch_first=True, total_length=total)
        logits = self.classifier(self.dropout(x))  # (batch, steps, vocab)
        return logits.float().log_softmax(-1), lengths


def rnn_precision(device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast state for the recurrent layers on ``device``.

    cuDNN's autocast wrapper runs RNNs in float16 whatever dtype autocast asks for, so under
    bf16 autocast they would run in fp16 without a loss scale and their small gradients
    would round to zero (README, "Mixed precision"). There the recurrent layers run in
    float32 instead (autocast off); under fp16 autocast (with the grad scaler) and on the
    CPU they follow autocast.
    """
    kind = device.type
    if kind == "cuda" and torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.bfloat16:
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def _map(x: torch.Tensor | PackedSequence, fn: nn.Module) -> torch.Tensor | PackedSequence:
    """Apply a per-frame module to a tensor or to a packed sequence's data."""
    return x._replace(data=fn(x.data)) if isinstance(x, PackedSequence) else fn(x)
