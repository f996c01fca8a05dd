"""Decoding options and the decoder they choose. Every decoder shares one interface
(:mod:`asr.greedy`)::

    decoder.decode(log_probs (batch, frames, vocab), lengths (batch,)) -> list[list[Hypothesis]]

:class:`DecodingOptions` holds and checks the choices once (greedy, or the beam search of
:mod:`asr.beam` with its LM, lexicon and weights); the command-line flags map onto it.
"""

from __future__ import annotations

from dataclasses import dataclass

from asr.beam import BeamSearchDecoder
from asr.beam_flags import add_beam_arguments, check_beam_flags
from asr.greedy import Decoder, GreedyDecoder, Hypothesis  # noqa: F401  (re-exported: the decoders' types)
from asr.text import Vocabulary
from asr.utils import UserError


@dataclass(frozen=True)
class DecodingOptions:
    """How to decode, checked once: ``decoder`` ``"greedy"`` or ``"beam"``; the rest are
    the beam search's (:class:`asr.beam.BeamSearchDecoder`): an n-gram ``lm`` (KenLM ARPA
    or binary), a ``lexicon``, ``beam_size``, ``beam_threshold``, ``lm_weight`` (alpha),
    ``word_score`` (beta), ``beam_size_token``, ``blank_skip`` and ``nbest``; and
    ``blank_penalty``, subtracted from the blank log-probabilities by either decoder.
    ``build(vocab)`` makes the decoder; the command-line flags (:func:`add_decoder_arguments`)
    map onto these fields."""

    decoder: str = "greedy"
    lm: str | None = None
    lexicon: str | None = None
    beam_size: int = 50
    beam_threshold: float = 10.0
    lm_weight: float = 0.5
    word_score: float = 0.0
    beam_size_token: int = 8
    blank_skip: float = 0.99
    nbest: int = 1
    blank_penalty: float = 0.0

    def __post_init__(self) -> None:
        if self.decoder not in ("greedy", "beam"):
            raise UserError(f"decoder {self.decoder!r}: expected 'greedy' or 'beam'")
        if self.decoder == "greedy":
            for flag in ("lm", "lexicon"):
                if getattr(self, flag):
                    raise UserError(f"--{flag} needs --decoder beam (greedy decoding uses no {flag})")
        check_beam_flags(self.beam_size, self.beam_size_token, self.blank_skip, self.nbest, self.blank_penalty)

    @classmethod
    def from_args(cls, args) -> "DecodingOptions":
        """From the parsed flags of :func:`add_decoder_arguments`."""
        return cls(**{f: getattr(args, f) for f in cls.__dataclass_fields__ if hasattr(args, f)})

    def build(self, vocab: Vocabulary) -> "Decoder":
        if self.decoder == "greedy":
            return GreedyDecoder(vocab, self.blank_penalty)
        return BeamSearchDecoder(vocab, lm=self.lm, lexicon=self.lexicon, beam_size=self.beam_size,
                                 beam_threshold=self.beam_threshold, lm_weight=self.lm_weight,
                                 word_score=self.word_score, nbest=self.nbest, beam_size_token=self.beam_size_token,
                                 blank_skip=self.blank_skip, blank_penalty=self.blank_penalty)


def add_decoder_arguments(parser) -> None:
    """The decoding flags shared by ``asr-transcribe`` and ``asr-evaluate`` (the search's own
    from :func:`asr.beam_flags.add_beam_arguments`, as ``asr-lm tune``'s)."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--decoder", choices=("greedy", "beam"), default="greedy", help="default: greedy")
    add_beam_arguments(g)
    g.add_argument("--lm-weight", type=float, default=0.5, help="LM weight, alpha (default 0.5)")
    g.add_argument("--word-score", type=float, default=0.0, help="word insertion score, beta (default 0)")
    g.add_argument("--nbest", type=int, default=1, help="hypotheses returned per input (beam only)")


def decoder_from_args(args, vocab: Vocabulary) -> Decoder:
    """Build the decoder the flags of :func:`add_decoder_arguments` ask for."""
    return DecodingOptions.from_args(args).build(vocab)
