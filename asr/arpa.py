"""Reading n-gram language models: ARPA files and KenLM binaries (checking, unigrams, all
n-grams, back-off scores). Building them is :mod:`asr.lm`; decoding with them,
:mod:`asr.beam`. A leaf module: it imports nothing of asr but the helpers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from asr.utils import UserError, text_lines

BOS, EOS, UNK, SIL = "<s>", "</s>", "<unk>", "|"
BINARY_MAGIC = b"mmap lm "
#: The highest n-gram order the beam decoder's KenLM loads (compiled in: KENLM_MAX_ORDER).
MAX_ORDER = 6


class LMError(UserError):
    """A language model or LM training text that cannot be used."""


def is_binary_lm(path: str | os.PathLike) -> bool:
    """True for a KenLM binary file (``build_binary`` output)."""
    with open(path, "rb") as f:
        return f.read(len(BINARY_MAGIC)) == BINARY_MAGIC


def check_lm(path: str | os.PathLike) -> Path:
    """Validate that ``path`` is an existing ARPA or KenLM binary file."""
    path = Path(path)
    if not path.is_file():
        raise LMError(f"--lm {path}: file not found; expected a KenLM ARPA or binary model "
                      "(build one with: asr-lm build TEXT_OR_MANIFEST OUT.arpa)")
    if not is_binary_lm(path):
        with open(path, encoding="utf-8", errors="replace") as f:
            head = "".join(f.readline() for _ in range(50))
        if "\\data\\" not in head:
            raise LMError(f"--lm {path}: neither an ARPA file (no \\data\\ header) nor a KenLM binary; "
                          "build one with: asr-lm build TEXT_OR_MANIFEST OUT.arpa")
    return path


def arpa_unigrams(path: str | os.PathLike) -> list[str]:
    """The words of an ARPA file's 1-gram section (read up to its end only)."""
    words, inside = [], False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == "\\1-grams:":
                inside = True
            elif inside:
                if line.startswith("\\"):
                    break
                parts = line.split()
                if len(parts) >= 2:
                    words.append(parts[1])
    return words


def read_arpa(path: str | os.PathLike) -> list[dict[tuple, tuple[float, float]]]:
    """All n-grams of an ARPA file: ``model[k-1][ngram] = (log10 prob, log10 backoff)``."""
    model: list[dict] = []
    for line in text_lines(path, "ARPA file"):
        line = line.strip()
        if line.endswith("-grams:") and line.startswith("\\"):
            model.append({})
            k = len(model)
        elif model and line and not line.startswith("\\"):
            parts = line.split()
            bow = float(parts[k + 1]) if len(parts) > k + 1 else 0.0
            model[-1][tuple(parts[1:k + 1])] = (float(parts[0]), bow)
    return model


def arpa_logprob(model: Sequence[dict[tuple, tuple[float, float]]], context: Sequence[str], word: str) -> float:
    """log10 P(word | context) of an ARPA model (as :func:`read_arpa` returns) by backing off."""
    context = tuple(context)[-(len(model) - 1):] if len(model) > 1 else ()
    bow = 0.0
    while True:
        g = (*context, word)
        if g in model[len(g) - 1]:
            return bow + model[len(g) - 1][g][0]
        if not context:
            return bow + model[0][(UNK,)][0]
        bow += model[len(context) - 1].get(context, (0.0, 0.0))[1]
        context = context[1:]
