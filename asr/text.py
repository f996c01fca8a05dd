"""Characters to token ids and back: the vocabulary saved in every checkpoint."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from num2words import num2words

from asr.utils import UserError

DEFAULT_CHARS = " 'abcdefghijklmnopqrstuvwxyz"
_SPACES = re.compile(r"\s+")
_DIGIT = re.compile(r"\d")
#: Punctuation that separates words; other punctuation the vocabulary lacks is deleted.
_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?")
#: What :meth:`Vocabulary.normalize` does with numbers written in digits: ``auto`` spells
#: them out when the vocabulary has no digits and keeps them when it has; ``spell`` always
#: spells them out; ``keep`` keeps the digits (the vocabulary must have them); ``drop``
#: deletes them, counted like any other character the vocabulary lacks.
NUMBERS = ("auto", "spell", "keep", "drop")
NUMBERS_HELP = ("numbers written in digits: auto spells them out in words (call 911 -> call nine hundred and "
                "eleven) unless the vocabulary has digits; spell, keep (the vocabulary needs 0-9) or drop (counted)")
_SEPARATORS = set("-_/\\.,;:!?()[]{}\"|+&*=<>~\u2010\u2011\u2012\u2013\u2014\u2015\u2026\u00b7")


def spell_numbers(text: str) -> str:
    """Numbers written in digits as English words (num2words): ``"call 911 now"`` ->
    ``"call nine hundred and eleven now"``, ``"3.5"`` -> ``"three point five"``."""
    def words(match: re.Match) -> str:
        digits = match.group().replace(",", "")
        return f" {num2words(float(digits) if '.' in digits else int(digits))} "

    return _NUMBER.sub(words, text)


class Vocabulary:
    """A character vocabulary with the CTC blank at index 0.

    Parameters
    ----------
    chars : str or sequence of str
        The tokens after the blank, each one character; the default is space,
        apostrophe and a-z (ids 1..28).
    numbers : str
        What normalising does with numbers written in digits, one of :data:`NUMBERS`
        (``auto``: spelt out in words, ``"call 911"`` -> ``"call nine hundred and eleven"``,
        unless the vocabulary has digits).
    """

    blank = 0
    #: What a token is: ``char`` here, ``subword`` for :class:`asr.subword.SubwordVocabulary`.
    units = "char"

    def __init__(self, chars: str | Sequence[str] = DEFAULT_CHARS, numbers: str = "auto"):
        tokens = list(chars)
        if not tokens or len(set(tokens)) != len(tokens) or any(len(t) != 1 for t in tokens):
            raise ValueError(f"vocabulary characters must be one or more distinct single characters, got {chars!r}")
        has_digits = any(c.isdigit() for c in tokens)
        if numbers not in NUMBERS:
            raise ValueError(f"numbers={numbers!r}: expected one of {', '.join(NUMBERS)}")
        if numbers == "keep" and not all(str(d) in tokens for d in range(10)):
            raise ValueError("numbers='keep' needs the digits 0-9 in the vocabulary's characters; add them, "
                             "or spell numbers out (auto, spell) or drop them (drop)")
        self.numbers = ("keep" if has_digits else "spell") if numbers == "auto" else numbers
        self.tokens = tokens
        self._index = {t: i + 1 for i, t in enumerate(tokens)}
        self._symbols = frozenset(self._index)
        upper, lower = any(c.isupper() for c in tokens), any(c.islower() for c in tokens)
        #: Case folding applied to text: a lowercase vocabulary lowercases, an uppercase one
        #: (deepspeech.pytorch's labels) uppercases, a mixed one keeps the case.
        self.case = "upper" if upper and not lower else "lower" if not upper else None

    def __len__(self) -> int:
        return len(self.tokens) + 1

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        """The id of one token (``KeyError`` when the vocabulary lacks it)."""
        return self._index[token]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.tokens == self.tokens and other.numbers == self.numbers

    def __repr__(self) -> str:
        chars = "".join(self.tokens)
        return f"Vocabulary({chars!r})" if Vocabulary(chars).numbers == self.numbers else \
            f"Vocabulary({chars!r}, numbers={self.numbers!r})"

    @property
    def labels(self) -> list[str]:
        """All symbols by id, index 0 the blank."""
        return ["<blank>", *self.tokens]

    def normalize(self, text: str, dropped: Counter | None = None) -> str:
        """Spell out numbers written in digits, keep or drop them (``numbers``; by default
        spelt out when the vocabulary has no digits, :func:`spell_numbers`), fold case (see
        ``case``), fold accents the vocabulary lacks (``é`` -> ``e``), turn separating
        punctuation into spaces, drop other characters the vocabulary lacks (counted into
        ``dropped`` when given), collapse spaces (or drop them, for a vocabulary without a
        space)."""
        text = unicodedata.normalize("NFC", text)
        if self.numbers == "spell" and _DIGIT.search(text):
            text = spell_numbers(text)
        elif self.numbers == "drop" and _DIGIT.search(text):
            if dropped is not None:
                dropped.update(c for c in text if c.isdigit())
            text = _DIGIT.sub("", text)
        if self.case == "lower":
            text = text.lower()
        elif self.case == "upper":
            text = text.upper()
        if self._symbols.issuperset(text):  # the common case, checked in C: nothing to map or drop
            return _SPACES.sub(" ", text).strip() if " " in self._index else text.replace(" ", "")
        out = []
        for char in text:
            if char in self._index:
                out.append(char)
                continue
            for ch in unicodedata.normalize("NFKD", char):
                if ch in self._index:
                    out.append(ch)
                elif ch.isspace() or ch in _SEPARATORS:
                    out.append(" ")
                elif ch in "\u2019\u2018`" and "'" in self._index:
                    out.append("'")
                elif dropped is not None and not unicodedata.combining(ch):
                    dropped[char] += 1
                    break
        text = "".join(out)
        return _SPACES.sub(" ", text).strip() if " " in self._index else text.replace(" ", "")

    def dropped_characters(self, texts: Iterable[str]) -> Counter:
        """How often each character of ``texts`` is dropped by :meth:`normalize`."""
        dropped: Counter = Counter()
        for text in texts:
            self.normalize(text, dropped)
        return dropped

    def encode(self, text: str, dropped: Counter | None = None) -> list[int]:
        """Normalise ``text`` (counting dropped characters into ``dropped`` when given) and
        map it to token ids."""
        return [self._index[c] for c in self.normalize(text, dropped)]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids to text; blanks are skipped, repeats are kept (CTC collapsing is the
        decoder's job)."""
        return "".join(self.tokens[i - 1] for i in ids if i != self.blank)


def vocab_from_options(chars: str = DEFAULT_CHARS, numbers: str = "auto") -> Vocabulary:
    """The vocabulary a command's ``--chars``/``--numbers`` ask for; a bad value is a
    :class:`~asr.utils.UserError` naming the options (the commands print it as one line)."""
    try:
        return Vocabulary(chars, numbers)
    except ValueError as e:
        raise UserError(f"--chars {chars!r} --numbers {numbers}: {e}") from None


def describe_dropped(dropped: Counter, limit: int = 8) -> str:
    """``"3 characters outside the vocabulary were dropped: '€' x2, '#' x1"``."""
    shown = ", ".join(f"{c!r} x{n}" for c, n in dropped.most_common(limit))
    more = f" and {len(dropped) - limit} more kinds" if len(dropped) > limit else ""
    return f"{sum(dropped.values())} characters outside the vocabulary were dropped: {shown}{more}"
