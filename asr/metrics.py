"""Word and character error rates, with aligned errors, through jiwer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jiwer


@dataclass(frozen=True)
class ErrorRates:
    """Totals over a set: ``wer``/``cer`` are fractions (0.1234 = 12.34%)."""

    wer: float
    cer: float
    substitutions: int
    deletions: int
    insertions: int
    words: int
    utterances: int

    def summary(self) -> str:
        return f"WER {100 * self.wer:.2f}% CER {100 * self.cer:.2f}% ({self.utterances} utterances)"


def _nonempty(texts: Sequence[str]) -> list[str]:
    # jiwer refuses empty references; a single space tokenises to zero words/characters
    # after its default transforms, so an empty reference scores every hypothesis word as
    # an insertion, as it should.
    return [t if t.strip() else " " for t in texts]


def error_rates(references: Sequence[str], hypotheses: Sequence[str]) -> ErrorRates:
    """Corpus-level WER and CER of ``hypotheses`` against ``references`` (same order)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    if not references:
        return ErrorRates(0.0, 0.0, 0, 0, 0, 0, 0)
    refs, hyps = _nonempty(references), _nonempty(hypotheses)
    w = jiwer.process_words(refs, hyps)
    c = jiwer.process_characters(refs, hyps)
    words = w.hits + w.substitutions + w.deletions
    chars = c.hits + c.substitutions + c.deletions
    return ErrorRates(
        wer=(w.substitutions + w.deletions + w.insertions) / max(words, 1),
        cer=(c.substitutions + c.deletions + c.insertions) / max(chars, 1),
        substitutions=w.substitutions, deletions=w.deletions, insertions=w.insertions,
        words=words, utterances=len(references),
    )


def word_edits(reference: str, hypothesis: str) -> list[dict]:
    """Word alignment as a list of ``{"op": "equal"|"substitute"|"delete"|"insert",
    "ref": str, "hyp": str}``, one entry per aligned word."""
    out = jiwer.process_words(_nonempty([reference])[0], _nonempty([hypothesis])[0])
    ref, hyp = out.references[0], out.hypotheses[0]
    ops = []
    for chunk in out.alignments[0]:
        r = ref[chunk.ref_start_idx:chunk.ref_end_idx]
        h = hyp[chunk.hyp_start_idx:chunk.hyp_end_idx]
        for i in range(max(len(r), len(h))):
            ops.append({"op": chunk.type, "ref": r[i] if i < len(r) else "", "hyp": h[i] if i < len(h) else ""})
    return ops
