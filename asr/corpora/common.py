"""What the corpora share: :class:`PrepareError` and the speaker split.

:func:`split_by_speaker` holds whole speakers out of training; ``asr-prepare split`` applies
it to any manifest with a ``speaker`` key (a Kaldi data directory's, a corpus's).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from asr.data import Utterance
from asr.utils import UserError


class PrepareError(UserError):
    """A corpus that cannot be prepared; the message names the file or folder and the fix."""


def split_by_speaker(utterances: Sequence[Utterance], dev: float = 0.1, test: float = 0.0,
                     seed: int = 0, folds: int = 0,
                     fold: int = 0) -> tuple[list[Utterance], list[Utterance], list[Utterance]]:
    """Split utterances into ``(train, dev, test)`` by speaker (``extra["speaker"]``).

    ``dev`` and ``test`` are a fraction of the speakers (``0 < x < 1``) or a number of
    speakers (``>= 1``); each held-out set gets at least one speaker when asked for.
    The speakers are shuffled with ``seed``; no speaker is in two sets.

    With ``folds=K`` (speaker cross-validation) the test speakers stay those of the split
    without folds, so a final test set that no fold chose on stays the same, and the other
    speakers are dealt into ``K`` folds: fold ``fold`` (0-based) is dev, the rest train.
    Every non-test speaker is dev in exactly one fold.
    """
    speakers = sorted({str(u.extra.get("speaker", "")) for u in utterances})
    if "" in speakers:
        missing = next(u.id for u in utterances if not u.extra.get("speaker"))
        raise PrepareError(f"utterance {missing!r} has no speaker; a speaker split needs a \"speaker\" key "
                           "on every manifest line (asr-prepare kaldi writes it from utt2spk)")

    def count(x: float) -> int:
        if x <= 0:
            return 0
        return int(x) if x >= 1 else max(1, round(x * len(speakers)))

    n_dev, n_test = count(dev), count(test)
    if n_dev + n_test >= len(speakers):
        raise PrepareError(f"{len(speakers)} speakers cannot give {n_dev} dev and {n_test} test speakers "
                           "and still leave some for training; hold out fewer speakers")
    order = speakers[:]
    random.Random(seed).shuffle(order)
    dev_spk, test_spk = set(order[:n_dev]), set(order[n_dev:n_dev + n_test])
    if folds:
        rest = order[:n_dev] + order[n_dev + n_test:]
        if not 2 <= folds <= len(rest) or not 0 <= fold < folds:
            raise PrepareError(f"--folds {folds} --fold {fold}: expected 2 <= folds <= {len(rest)} (the speakers "
                               f"outside the test set) and 0 <= fold < folds")
        dev_spk = set(rest[fold::folds])
    parts: tuple[list, list, list] = ([], [], [])
    for u in utterances:
        spk = str(u.extra["speaker"])
        parts[1 if spk in dev_spk else 2 if spk in test_spk else 0].append(u)
    return parts
