"""Subword units: a sentencepiece model inside the vocabulary, so a checkpoint still
describes itself.

The CTC outputs are the blank (id 0), the space (id 1) and the pieces of a sentencepiece
model trained on the training transcripts' *words*: no piece spans a space, so words are
still separated by a space token, and everything built on characters and spaces (word
timings, the beam search's lexicon and word LM, WER) works unchanged. Text is normalised
by the character vocabulary first (case, numbers, punctuation; :class:`asr.text.Vocabulary`),
and a word's pieces are sentencepiece's segmentation of it::

    "welcome home" -> ["we", "l", "come", " ", "home"]   (256 pieces)

Fewer, longer tokens than characters: speechocean762's training words take 1.6 pieces a
word with 256 pieces (2.0 with 128, 1.3 with 512) against 3.7 characters, plus the space.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

from asr.text import DEFAULT_CHARS, Vocabulary

#: sentencepiece's segmentation algorithms (``data.subword_type``).
SUBWORD_TYPES = ("unigram", "bpe")
_WORD_BOUNDARY = "\u2581"  # sentencepiece's "▁"


def _processor(model: bytes):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model)
    return sp


class SubwordVocabulary(Vocabulary):
    """Blank, space and the pieces of a sentencepiece model (see the module docstring).

    Parameters
    ----------
    model : bytes
        A serialised sentencepiece model (:func:`train_subwords` writes one).
    chars : str
        The characters text is normalised to before segmentation (must include the space).
    numbers : str
        As for :class:`asr.text.Vocabulary`.
    """

    units = "subword"

    def __init__(self, model: bytes, chars: str | Sequence[str] = DEFAULT_CHARS, numbers: str = "auto"):
        self.chars = Vocabulary(chars, numbers)
        if " " not in self.chars:
            raise ValueError(f"subword units need a space among the characters to find words; got {''.join(chars)!r}")
        self.model = bytes(model)
        try:
            self._sp = _processor(self.model)
        except Exception as e:  # sentencepiece raises RuntimeError or OSError for a bad proto
            raise ValueError(f"not a sentencepiece model ({str(e).strip().splitlines()[0] if str(e).strip() else e})") \
                from None
        pieces = [self._sp.id_to_piece(i) for i in range(self._sp.get_piece_size())]
        # sentencepiece id -> ours: <unk> and a lone "▁" never occur in a word's pieces
        self._ours = {i: None for i, p in enumerate(pieces) if self._sp.is_unknown(i) or self._sp.is_control(i)
                      or p == _WORD_BOUNDARY}
        tokens = [" "]
        for i, p in enumerate(pieces):
            if i not in self._ours:
                if " " in p or _WORD_BOUNDARY in p:
                    raise ValueError(f"piece {p!r} spans a word boundary; train the model on words (train_subwords)")
                self._ours[i] = len(tokens) + 1
                tokens.append(p)
        self.numbers, self.case = self.chars.numbers, self.chars.case
        self.tokens = tokens
        self._index = {t: i + 1 for i, t in enumerate(tokens)}
        self._words: dict[str, list[int]] = {}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SubwordVocabulary) and other.tokens == self.tokens and other.chars == self.chars \
            and other.model == self.model

    def __repr__(self) -> str:
        return f"SubwordVocabulary({len(self.tokens) - 1} pieces, chars={''.join(self.chars.tokens)!r})"

    def normalize(self, text: str, dropped: Counter | None = None) -> str:
        """As the character vocabulary normalises (:meth:`asr.text.Vocabulary.normalize`)."""
        return self.chars.normalize(text, dropped)

    def spell(self, word: str) -> list[int] | None:
        """The ids of one normalised word's pieces (None for an empty word or one with a space)."""
        ids = self._words.get(word)
        if ids is None:
            if not word or " " in word:
                return None
            ids = [self._ours[i] for i in self._sp.encode(word)]
            if None in ids:  # a character the model never saw (not in ``chars``)
                return None
            self._words[word] = ids
        return ids

    def encode(self, text: str, dropped: Counter | None = None) -> list[int]:
        """Normalise ``text`` and segment each word; words are joined by the space (id 1)."""
        out: list[int] = []
        for word in self.normalize(text, dropped).split():
            ids = self.spell(word)
            if ids is None:  # normalised text holds only ``chars``, and every one is a piece
                raise ValueError(f"word {word!r} cannot be spelt with this model's pieces")
            if out:
                out.append(1)
            out.extend(ids)
        return out


def vocabulary_state(vocab: Vocabulary) -> dict:
    """The checkpoint keys that describe ``vocab``: ``vocab`` (characters) and ``numbers``,
    plus ``subword_model`` (the sentencepiece model's bytes, a uint8 tensor) for subwords."""
    if isinstance(vocab, SubwordVocabulary):
        return {"vocab": "".join(vocab.chars.tokens), "numbers": vocab.chars.numbers,
                "subword_model": torch.frombuffer(bytearray(vocab.model), dtype=torch.uint8)}
    return {"vocab": "".join(vocab.tokens), "numbers": vocab.numbers}


def vocabulary_from_state(state: dict) -> Vocabulary:
    """The vocabulary a checkpoint describes (``subword_model`` a uint8 tensor or bytes);
    ``ValueError`` when it cannot be rebuilt."""
    numbers = state.get("numbers", "auto")
    model = state.get("subword_model")
    if model is None:
        return Vocabulary(state["vocab"], numbers)
    if isinstance(model, torch.Tensor):
        model = model.cpu().numpy().tobytes()
    return SubwordVocabulary(model, state["vocab"], numbers)


def train_subwords(texts: Iterable[str], size: int, chars: str | Sequence[str] = DEFAULT_CHARS,
                   numbers: str = "auto", model_type: str = "unigram") -> SubwordVocabulary:
    """Train a sentencepiece model of about ``size`` pieces on the words of ``texts``.

    Parameters
    ----------
    texts : iterable of str
        Transcripts; normalised with ``chars`` and ``numbers`` first.
    size : int
        Pieces to learn, each character of ``chars`` among them; fewer when the words do not
        have that many (sentencepiece's soft limit).
    model_type : str
        ``unigram`` (sentencepiece's default) or ``bpe``.
    """
    import sentencepiece as spm

    base = Vocabulary(chars, numbers)
    letters = "".join(c for c in base.tokens if c != " ")
    if model_type not in SUBWORD_TYPES:
        raise ValueError(f"subword type {model_type!r}: expected one of {', '.join(SUBWORD_TYPES)}")
    if size <= len(letters) + 1:
        raise ValueError(f"{size} subword units are too few: the {len(letters)} characters alone need "
                         f"{len(letters) + 1} (with sentencepiece's <unk>); ask for more, or use characters")
    words = [w for t in texts for w in base.normalize(t).split()]
    if not words:
        raise ValueError("no words to train subword units on (every transcript is empty)")
    out = io.BytesIO()
    spm.SentencePieceTrainer.train(  # each letter once more: sentencepiece keeps only those it saw
        sentence_iterator=iter([*words, *letters]), model_writer=out, vocab_size=size, model_type=model_type,
        character_coverage=1.0, add_dummy_prefix=False, bos_id=-1, eos_id=-1, unk_id=0,
        normalization_rule_name="identity", hard_vocab_limit=False, num_threads=1, minloglevel=2,
        input_sentence_size=0, shuffle_input_sentence=False, max_sentence_length=1 << 16)
    return SubwordVocabulary(out.getvalue(), chars, numbers)
