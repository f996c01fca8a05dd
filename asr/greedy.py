"""The decoder interface every decoder shares, its result type, and best-path decoding::

    decoder.decode(log_probs (batch, frames, vocab), lengths (batch,)) -> list[list[Hypothesis]]

one N-best list per utterance, best first (greedy returns one hypothesis each). The beam
search is :mod:`asr.beam`; choosing between them from options is :mod:`asr.decoding`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from asr.text import Vocabulary


@dataclass(frozen=True)
class Hypothesis:
    """A decoded transcript. ``tokens`` are vocabulary ids after CTC collapsing;
    ``timesteps[i]`` is the encoder frame where ``tokens[i]`` was emitted; ``score`` is the
    decoder's total log-score (acoustic, plus LM terms for an LM decoder)."""

    text: str
    tokens: list[int] = field(default_factory=list)
    timesteps: list[int] = field(default_factory=list)
    score: float = 0.0


class Decoder(Protocol):
    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]: ...


class GreedyDecoder:
    """Best path: argmax per frame, merge repeats, drop blanks.

    ``blank_penalty`` (nats) is subtracted from every frame's blank log-probability first:
    a positive value lets a letter win the frames where the model hesitates between it and
    blank (a model that deletes words), a negative one the reverse; the score includes it.
    """

    def __init__(self, vocab: Vocabulary, blank_penalty: float = 0.0):
        self.vocab = vocab
        self.blank_penalty = float(blank_penalty)

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        log_probs = penalize_blank(log_probs.detach().float(), self.vocab.blank, self.blank_penalty)
        best, ids = log_probs.max(-1)  # (batch, frames)
        best, ids, lengths = best.cpu(), ids.cpu(), lengths.cpu().tolist()
        out = []
        for b, n in enumerate(lengths):
            seq = ids[b, :n]
            keep = torch.ones(n, dtype=torch.bool)
            keep[1:] = seq[1:] != seq[:-1]
            keep &= seq != self.vocab.blank
            frames = keep.nonzero().squeeze(1)
            tokens = seq[frames].tolist()
            # a space emitted twice (space, blank, space) or at either end is not part of the text
            text = " ".join(self.vocab.decode(tokens).split())
            out.append([Hypothesis(text, tokens, frames.tolist(), float(best[b, :n].sum()))])
        return out


def penalize_blank(log_probs: torch.Tensor, blank: int, penalty: float) -> torch.Tensor:
    """``log_probs`` (..., vocab) with ``penalty`` subtracted from column ``blank`` (a copy;
    the input itself when the penalty is 0)."""
    if not penalty:
        return log_probs
    out = log_probs.clone()
    out[..., blank] -= penalty
    return out
