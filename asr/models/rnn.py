"""What the models share: bidirectional recurrent layers and a linear CTC classifier over a
front end's output, the options of those layers, and their precision under autocast."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
PACKING = ("auto", "always", "never")


@dataclass
class RecurrentConfig:
    """Options of the recurrent layers, shared by every model's config (a subclass per
    architecture). ``name`` is the architecture (a key of :data:`asr.models.MODELS`); each
    subclass fixes its own. ``pack``: ``auto`` packs sequences on CUDA, and on the CPU at
    inference (eval mode) but not in training (see :meth:`RecurrentCTC.recurrent`)."""

    name: str = ""
    rnn_type: str = "lstm"
    hidden_size: int = 320
    num_layers: int = 3
    dropout: float = 0.1
    layer_norm: bool = False
    pack: str = "auto"

    def __post_init__(self) -> None:
        own = type(self).__dataclass_fields__["name"].default
        if self.name != own:
            raise ValueError(f"model.name={self.name!r} but these are the {own} model's options; choose the "
                             "architecture with model=PRESET (asr/conf/model/), not with model.name")
        if self.rnn_type not in RNN_TYPES:
            raise ValueError(f"model.rnn_type={self.rnn_type!r}; expected one of {sorted(RNN_TYPES)}")
        if self.pack not in PACKING:
            raise ValueError(f"model.pack={self.pack!r}; expected one of {PACKING}")
        if self.num_layers < 1 or self.hidden_size < 1:
            raise ValueError("model: num_layers and hidden_size must be at least 1")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"model.dropout={self.dropout}; expected 0 <= dropout < 1")


class RecurrentCTC(nn.Module):
    """Base of the models: ``cfg.num_layers`` bidirectional recurrent layers over
    ``input_dim`` features per step, then a linear classifier. A subclass builds its front
    end and, in ``forward``, calls :meth:`recurrent` and :meth:`classify` on its output.

    The attribute names (``rnns``, ``norms``, ``classifier``) are the checkpoints' keys.
    """

    def __init__(self, cfg: RecurrentConfig, input_dim: int, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        rnn = RNN_TYPES[cfg.rnn_type]
        dims = [input_dim] + [2 * cfg.hidden_size] * (cfg.num_layers - 1)
        self.rnns = nn.ModuleList(rnn(d, cfg.hidden_size, batch_first=True, bidirectional=True) for d in dims)
        self.norms = nn.ModuleList(
            nn.LayerNorm(2 * cfg.hidden_size) if cfg.layer_norm else nn.Identity() for _ in dims)
        self.dropout = nn.Dropout(cfg.dropout)
        self.classifier = nn.Linear(2 * cfg.hidden_size, vocab_size)

    def output_lengths(self, frame_lengths):
        """Output steps for ``frame_lengths`` feature frames (an int or a tensor)."""
        return self.cfg.output_lengths(frame_lengths)

    def for_export(self) -> "RecurrentCTC":
        """This model, sharing its weights, in a form that traces for every length: it never
        packs sequences (packing does not trace), so padding reaches the backward direction
        of a shorter utterance; exported models run each utterance alone."""
        clone = copy.copy(self)  # shares the submodules; only the config differs
        clone.cfg = dataclasses.replace(self.cfg, pack="never")
        return clone

    def recurrent(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x (batch, steps, input_dim)``, ``lengths (batch,)`` -> ``(batch, steps, 2 * hidden_size)``.

        Packing keeps padding out of the backward direction, so an utterance's output does
        not depend on what it is batched with, and cuDNN runs packed batches fast. On the
        CPU, training through ``pack_padded_sequence`` is several times slower than the
        padded batch (README, "Training"), so CPU training runs the padded batch and relies
        on length-bucketed batches to keep padding low (CTC reads only the true lengths).
        CPU inference packs (its cost: bench/packing.py), as transcripts and WER must not
        change with the batch size.
        """
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
        return x

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, steps, 2 * hidden_size)`` -> float32 log-probabilities ``(batch, steps, vocab)``."""
        logits = self.classifier(self.dropout(x))
        return logits.float().log_softmax(-1)


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
