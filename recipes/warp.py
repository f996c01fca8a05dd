"""Test-time frequency warping of a held-out speaker's features: a measurement, not a default.

    python recipes/warp.py MODEL MANIFEST [--lexicon LEX] [--alphas 0.86,0.9,...] [--average 0.9,0.94,1,1.06,1.1]

For each warp factor alpha, the manifest is decoded with its log-mel features warped along
the frequency axis (``asr.augment.warp_frequency``, the training-time vocal-tract-length
perturbation; alpha < 1 moves formants down) and scored against the references. Beside each
WER are two scores that need no reference: the mean per-frame CTC log-likelihood of the
decoded transcript (``score``), and the mean log-probability of the most likely token over
the frames where that token is not blank (``confidence``). Then the alpha that each of them
picks over the whole manifest, and the WER of the posteriors averaged over the ``--average``
factors (probabilities, frame by frame). Decoding
is greedy, or beam search over ``--lexicon``'s words when given.
"""

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from asr.augment import warp_frequency  # noqa: E402
from asr.beam import BeamSearchDecoder  # noqa: E402
from asr.data import read_manifest  # noqa: E402
from asr.decoding import GreedyDecoder  # noqa: E402
from asr.evaluation import utterance_log_probs  # noqa: E402
from asr.metrics import error_rates  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.utils import UserError  # noqa: E402


def factors(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def warped_log_probs(rec: Recognizer, utterances, alpha: float) -> list[torch.Tensor]:
    """``[(steps, vocab)]`` per utterance, in manifest order, with the features warped by ``alpha``."""
    def warp(feats):  # (batch, frames, n_mels)
        return warp_frequency(feats, torch.full((feats.shape[0],), alpha), rec.feature_cfg)
    return utterance_log_probs(rec, utterances, transform=warp if alpha != 1.0 else None)


def transcript_score(log_probs: torch.Tensor, tokens: list[int], blank: int) -> float:
    """Mean per-frame CTC log-likelihood of ``tokens`` under ``log_probs (steps, vocab)``."""
    steps = log_probs.shape[0]
    if not tokens:
        return log_probs[:, blank].mean().item()
    nll = F.ctc_loss(log_probs[:, None], torch.tensor([tokens]), torch.tensor([steps]), torch.tensor([len(tokens)]),
                     blank=blank, reduction="sum", zero_infinity=True)
    return -nll.item() / steps


def confidence(log_probs: torch.Tensor, blank: int) -> float:
    """Mean of ``log_probs (steps, vocab)``'s best log-probability over the frames where it is not blank."""
    best = log_probs.max(-1)
    keep = best.indices != blank
    return best.values[keep].mean().item() if keep.any() else 0.0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model")
    p.add_argument("manifest")
    p.add_argument("--lexicon", help="beam search over these words (default: greedy decoding)")
    p.add_argument("--alphas", type=factors, default=factors("0.82,0.86,0.9,0.94,0.97,1,1.03,1.06,1.1,1.14,1.18"))
    p.add_argument("--average", type=factors, default=factors("0.9,0.94,1,1.06,1.1"))
    args = p.parse_args(argv)
    for a in args.alphas + args.average:
        if not 0.8 <= a <= 1.25:
            p.error(f"warp factor {a}: expected values within [0.8, 1.25]")
    torch.set_num_threads(1)
    try:
        rec = Recognizer.from_checkpoint(args.model)
        utterances = read_manifest(args.manifest)
    except (UserError, OSError) as e:
        p.exit(1, f"warp.py: error: {e}\n")
    if not utterances:
        p.exit(1, f"warp.py: error: {args.manifest}: no utterances; expected a manifest with at least one\n")
    refs = [rec.vocab.normalize(u.text) for u in utterances]
    decoder = (BeamSearchDecoder(rec.vocab, lexicon=args.lexicon, num_threads=1) if args.lexicon
               else GreedyDecoder(rec.vocab))

    def decode(lps: list[torch.Tensor]):
        hyps = [decoder.decode(x[None], torch.tensor([len(x)]))[0][0] for x in lps]  # one (1, steps, vocab) each
        return hyps, 100 * error_rates(refs, [h.text for h in hyps]).wer

    cache: dict[float, list[torch.Tensor]] = {}
    scores: dict[float, float] = {}
    confidences: dict[float, float] = {}
    wers: dict[float, float] = {}
    for alpha in sorted(set(args.alphas)):
        cache[alpha] = warped_log_probs(rec, utterances, alpha)
        hyps, wers[alpha] = decode(cache[alpha])
        scores[alpha] = sum(transcript_score(x, h.tokens, rec.vocab.blank)
                            for x, h in zip(cache[alpha], hyps)) / len(hyps)
        confidences[alpha] = sum(confidence(x, rec.vocab.blank) for x in cache[alpha]) / len(hyps)
        print(f"alpha {alpha:.3f}: WER {wers[alpha]:6.2f}%  score {scores[alpha]:.4f}  "
              f"confidence {confidences[alpha]:.4f}", flush=True)
    for name, values in (("score", scores), ("confidence", confidences)):
        chosen = max(values, key=values.get)
        print(f"label-free choice (highest {name}): alpha {chosen:.3f}, WER {wers[chosen]:.2f}%")
    if args.average:
        lps = [cache.get(a) or warped_log_probs(rec, utterances, a) for a in args.average]
        mean = [torch.logsumexp(torch.stack(per_utt), 0) - torch.log(torch.tensor(float(len(lps))))
                for per_utt in zip(*lps)]  # log of the mean probability, (steps, vocab) each
        print(f"posteriors averaged over {','.join(f'{a:g}' for a in args.average)}: WER {decode(mean)[1]:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
