"""The beam search's command-line flags, shared by ``asr-transcribe``, ``asr-evaluate`` and
``asr-lm tune`` so that the pair ``asr-lm tune`` picks is the pair the others decode with.

Torch-free on purpose: ``asr-lm`` imports it, and ``asr-lm build`` starts without torch.
"""

from __future__ import annotations

import math

from asr.utils import UserError

BLANK_SKIP_HELP = ("cut runs of frames whose blank probability exceeds this to one frame before the search, "
                   "1 = keep all (default 0.99)")
BLANK_PENALTY_HELP = ("subtract this from every frame's blank log-probability before decoding (greedy or beam): "
                      "more words where the output drops them, fewer with a negative value (default 0; "
                      "tune it on dev together with the LM weight and word score)")


def add_beam_arguments(group, lm_required: bool = False) -> None:
    """The search's flags (not its LM weight and word score, which ``asr-lm tune`` searches)
    on an argparse group: --lm, --lexicon, --beam-size, --beam-threshold, --beam-size-token,
    --blank-skip, and --blank-penalty (which greedy decoding takes too)."""
    group.add_argument("--lm", required=lm_required,
                       help="n-gram language model, KenLM ARPA or binary" + ("" if lm_required else " (beam only)"))
    group.add_argument("--lexicon", help="lexicon file, a word and its spelling a line (beam only); without it "
                                         "a word LM's own words are the lexicon, and a character or piece LM "
                                         "(asr-lm build --unit char|piece) decodes lexicon-free")
    group.add_argument("--beam-size", type=int, default=50, help="hypotheses kept per frame (default 50)")
    group.add_argument("--beam-threshold", type=float, default=10.0,
                       help="prune hypotheses scoring this far below the best (default 10)")
    group.add_argument("--beam-size-token", type=int, default=8,
                       help="tokens tried per frame, 0 = all (default 8)")
    group.add_argument("--blank-skip", type=float, default=0.99, help=BLANK_SKIP_HELP)
    group.add_argument("--blank-penalty", type=float, default=0.0, help=BLANK_PENALTY_HELP)


def check_beam_flags(beam_size: int, beam_size_token: int, blank_skip: float, nbest: int = 1,
                     blank_penalty: float = 0.0) -> None:
    """Refuse search settings the decoder cannot use, naming the flag."""
    if beam_size < 1 or nbest < 1:
        raise UserError("--beam-size and --nbest must be at least 1")
    if beam_size_token < 0:
        raise UserError("--beam-size-token must be 0 (all tokens) or more")
    check_blank_skip(blank_skip)
    check_blank_penalty(blank_penalty)


def check_blank_penalty(blank_penalty: float) -> None:
    """Refuse a ``--blank-penalty`` that is not a finite number."""
    if not math.isfinite(blank_penalty):
        raise UserError(f"--blank-penalty {blank_penalty}: expected a finite number of nats, or 0 to "
                        "leave the model's blank probabilities as they are")


def check_blank_skip(blank_skip: float) -> None:
    """Refuse a ``--blank-skip`` outside [0.5, 1]: below 0.5 a frame could be skipped as
    blank while a letter is more likely."""
    if not 0.5 <= blank_skip <= 1.0:
        raise UserError(f"--blank-skip {blank_skip}: expected a probability from 0.5 to 1 (1 keeps every frame; "
                        "the default 0.99 cuts runs of near-certain blank frames to one)")
