"""Characters to token ids and back: the vocabulary saved in every checkpoint."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

DEFAULT_CHARS = " 'abcdefghijklmnopqrstuvwxyz"
_SPACES = re.compile(r"\s+")
#: Punctuation that separates words; other punctuation the vocabulary lacks is deleted.
_SEPARATORS = set("-_/\\.,;:!?()[]{}\"|+&*=<>~")


class Vocabulary:
    """A character vocabulary with the CTC blank at index 0.

    Parameters
    ----------
    chars : str or sequence of str
        The tokens after the blank, each one character; the default is space,
        apostrophe and a-z (ids 1..28).
    """

    blank = 0

    def __init__(self, chars: str | Sequence[str] = DEFAULT_CHARS):
        tokens = list(chars)
        if len(set(tokens)) != len(tokens) or any(len(t) != 1 for t in tokens):
            raise ValueError(f"vocabulary characters must be distinct single characters, got {chars!r}")
        self.tokens = tokens
        self._index = {t: i + 1 for i, t in enumerate(tokens)}
        self.lowercase = not any(c.isupper() for c in tokens)

    def __len__(self) -> int:
        return len(self.tokens) + 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.tokens == self.tokens

    def __repr__(self) -> str:
        return f"Vocabulary({''.join(self.tokens)!r})"

    @property
    def labels(self) -> list[str]:
        """All symbols by id, index 0 the blank."""
        return ["<blank>", *self.tokens]

    def normalize(self, text: str) -> str:
        """Lowercase (for a lowercase vocabulary), fold accents, turn separating punctuation
        into spaces, drop other characters the vocabulary lacks, collapse spaces."""
        if self.lowercase:
            text = text.lower()
        out = []
        for ch in unicodedata.normalize("NFKD", text):
            if ch in self._index:
                out.append(ch)
            elif ch.isspace() or ch in _SEPARATORS:
                out.append(" ")
            elif ch in "\u2019\u2018`" and "'" in self._index:
                out.append("'")
        return _SPACES.sub(" ", "".join(out)).strip() if " " in self._index else "".join(out)

    def encode(self, text: str) -> list[int]:
        """Normalise ``text`` and map it to token ids."""
        return [self._index[c] for c in self.normalize(text)]

    def decode(self, ids: Iterable[int]) -> str:
        """Token ids to text; blanks are skipped, repeats are kept (CTC collapsing is the
        decoder's job)."""
        return "".join(self.tokens[i - 1] for i in ids if i != self.blank)
