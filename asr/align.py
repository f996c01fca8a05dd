"""Word timestamps and confidences from CTC posteriors.

The hypothesis' tokens are force-aligned to the posteriors (torchaudio's
:func:`~torchaudio.functional.forced_align`, Viterbi over the CTC topology); each token's
span of output steps is converted to seconds (step index x ``frame_shift``: the feature
hop times the model's frames per step, whatever the model). A word runs from its first
token's first step to its last token's last step; its confidence is the mean, over its
tokens, of the token's average posterior probability across its span (1.0: the model was
certain of every character).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF

from asr.text import Vocabulary


@dataclass(frozen=True)
class Word:
    """A recognised word: ``start``/``end`` in seconds from the start of the recording,
    ``confidence`` in [0, 1]."""

    word: str
    start: float
    end: float
    confidence: float

    def to_json(self) -> dict:
        return {"word": self.word, "start": round(self.start, 3), "end": round(self.end, 3),
                "confidence": round(self.confidence, 4)}


def align_words(log_probs: torch.Tensor, tokens: list[int], vocab: Vocabulary, frame_shift: float,
                offset: float = 0.0) -> list[Word]:
    """Words with timestamps for one utterance.

    Parameters
    ----------
    log_probs : torch.Tensor
        ``(frames, vocab)`` CTC log-posteriors of the utterance (padding removed).
    tokens : list of int
        The transcript as token ids (a decoder's ``Hypothesis.tokens``), no blanks.
    vocab : Vocabulary
        Words are split at its space token (without one the transcript is one word).
    frame_shift : float
        Seconds per frame (``Recognizer.frame_shift``).
    offset : float
        Seconds added to every time (the chunk's start in a long recording).

    Returns
    -------
    list of Word
        In order; empty for an empty transcript.
    """
    tokens = [t for t in tokens if t != vocab.blank]
    if not tokens or log_probs.shape[0] == 0:
        return []
    emissions = log_probs.detach().float().cpu()
    targets = torch.tensor([tokens], dtype=torch.int32)
    repeats = sum(a == b for a, b in zip(tokens, tokens[1:]))
    if len(tokens) + repeats > emissions.shape[0]:  # cannot align: spread evenly
        return _even_words(tokens, vocab, emissions.shape[0] * frame_shift, offset)
    path, scores = AF.forced_align(emissions[None], targets, blank=vocab.blank)
    spans = AF.merge_tokens(path[0], scores[0].exp())
    space = vocab.id(" ") if " " in vocab else None
    words, current = [], []
    for span in spans + [None]:
        if span is None or span.token == space:
            if current:
                text = vocab.decode([s.token for s in current])
                conf = sum(s.score for s in current) / len(current)
                words.append(Word(text, offset + current[0].start * frame_shift,
                                  offset + current[-1].end * frame_shift, float(conf)))
            current = []
        else:
            current.append(span)
    return words


def _even_words(tokens: list[int], vocab: Vocabulary, duration: float, offset: float) -> list[Word]:
    texts = vocab.decode(tokens).split()
    step = duration / max(len(texts), 1)
    return [Word(w, offset + i * step, offset + (i + 1) * step, 0.0) for i, w in enumerate(texts)]
