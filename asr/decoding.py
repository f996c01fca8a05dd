"""CTC decoders. Every decoder shares one interface::

    decoder.decode(log_probs (batch, frames, vocab), lengths (batch,)) -> list[list[Hypothesis]]

one N-best list per utterance, best first (greedy returns one hypothesis each).
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
    """Best path: argmax per frame, merge repeats, drop blanks."""

    def __init__(self, vocab: Vocabulary):
        self.vocab = vocab

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        best, ids = log_probs.detach().float().max(-1)  # (batch, frames)
        best, ids, lengths = best.cpu(), ids.cpu(), lengths.cpu().tolist()
        out = []
        for b, n in enumerate(lengths):
            seq = ids[b, :n]
            keep = torch.ones(n, dtype=torch.bool)
            keep[1:] = seq[1:] != seq[:-1]
            keep &= seq != self.vocab.blank
            frames = keep.nonzero().squeeze(1)
            tokens = seq[frames].tolist()
            out.append([Hypothesis(self.vocab.decode(tokens), tokens, frames.tolist(),
                                   float(best[b, :n].sum()))])
        return out


def add_decoder_arguments(parser) -> None:
    """The decoding flags shared by ``asr-transcribe``, ``asr-evaluate`` and ``asr-lm tune``."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--decoder", choices=("greedy", "beam"), default="greedy", help="default: greedy")
    g.add_argument("--lm", help="n-gram language model, KenLM ARPA or binary (beam only)")
    g.add_argument("--lexicon", help="lexicon file, a word and its spelling a line (beam only); without it "
                                     "a word LM's own words are the lexicon, and a character LM "
                                     "(asr-lm build --unit char) decodes lexicon-free")
    g.add_argument("--beam-size", type=int, default=50, help="hypotheses kept per frame (default 50)")
    g.add_argument("--beam-threshold", type=float, default=15.0,
                   help="prune hypotheses scoring this far below the best (default 15)")
    g.add_argument("--lm-weight", type=float, default=0.5, help="LM weight, alpha (default 0.5)")
    g.add_argument("--word-score", type=float, default=0.0, help="word insertion score, beta (default 0)")
    g.add_argument("--beam-size-token", type=int, default=8, help="tokens tried per frame, 0 = all (default 8)")
    g.add_argument("--nbest", type=int, default=1, help="hypotheses returned per input (beam only)")


def decoder_from_args(args, vocab: Vocabulary) -> Decoder:
    """Build the decoder the flags of :func:`add_decoder_arguments` ask for."""
    from asr.utils import UserError

    if args.decoder == "greedy":
        for flag in ("lm", "lexicon"):
            if getattr(args, flag):
                raise UserError(f"--{flag} needs --decoder beam (greedy decoding uses no {flag})")
        return GreedyDecoder(vocab)
    if args.beam_size < 1 or args.nbest < 1:
        raise UserError("--beam-size and --nbest must be at least 1")
    from asr.beam import BeamSearchDecoder

    return BeamSearchDecoder(vocab, lm=args.lm, lexicon=args.lexicon, beam_size=args.beam_size,
                             beam_threshold=args.beam_threshold, lm_weight=args.lm_weight,
                             word_score=args.word_score, nbest=args.nbest,
                             beam_size_token=args.beam_size_token)
