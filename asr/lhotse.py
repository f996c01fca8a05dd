"""lhotse manifests to ours, without lhotse itself: its JSON-lines formats are read directly.

- a ``CutSet`` (``cuts.jsonl[.gz]``): every supervision of every cut becomes an utterance;
- a ``RecordingSet`` and a ``SupervisionSet`` (``recordings.jsonl[.gz]``,
  ``supervisions.jsonl[.gz]``): every supervision becomes an utterance of its recording.

Audio must be a file source (``{"type": "file", "source": path}``); URL, command and
in-memory sources are refused with a line naming the item. A supervision that covers its
whole recording becomes a plain line; otherwise the line gets an ``offset`` into the file.
With this, every corpus ``lhotse prepare`` knows is one command away::

    lhotse prepare librispeech ~/LibriSpeech data/lhotse
    asr-prepare lhotse data/lhotse/librispeech_cuts_train-clean-100.jsonl.gz train.jsonl
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from asr.data import Utterance
from asr.utils import UserError


class LhotseError(UserError):
    """A lhotse manifest that cannot be converted; the message names the file:line and the fix."""


def _lines(path: Path) -> Iterator[tuple[str, dict]]:
    """``(file:line, object)`` for each non-blank line of a JSON-lines file, gzipped or not."""
    if not path.is_file():
        raise LhotseError(f"{path}: not found; pass a lhotse JSON-lines manifest (e.g. cuts.jsonl.gz)")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise LhotseError(f"{path}:{lineno}: not valid JSON ({e.msg}); expected a lhotse "
                                      "JSON-lines manifest") from None
                if not isinstance(obj, dict):
                    raise LhotseError(f"{path}:{lineno}: expected a JSON object")
                yield f"{path}:{lineno}", obj
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise LhotseError(f"{path}: cannot read it ({e}); expected UTF-8 JSON lines, optionally gzipped") from None


def _audio_file(recording: dict, where: str) -> str:
    sources = recording.get("sources") or []
    if len(sources) != 1 or sources[0].get("type") != "file":
        kinds = ", ".join(str(s.get("type")) for s in sources) or "none"
        raise LhotseError(f"{where}: recording {recording.get('id')!r} has source(s) of type {kinds}; only one "
                          "audio file per recording is supported (write the audio to files first)")
    return str(sources[0]["source"])


def _utterance(sup: dict, recording: dict, offset: float, where: str) -> Utterance:
    try:
        uid, text, duration = str(sup["id"]), sup.get("text"), float(sup["duration"])
    except (KeyError, TypeError, ValueError):
        raise LhotseError(f"{where}: a supervision needs an id and a duration in seconds") from None
    if not isinstance(text, str):
        raise LhotseError(f"{where}: supervision {uid!r} has no text; only transcribed supervisions convert")
    path = _audio_file(recording, where)
    whole = abs(offset) < 1e-6 and abs(duration - float(recording.get("duration", -1))) < 1e-3
    extra = {k: sup[k] for k in ("speaker", "language") if sup.get(k) is not None}
    return Utterance(uid, path, duration, text, {**extra, "recording": recording.get("id")},
                     offset=None if whole else round(offset, 6))


def read_cuts(path: str | os.PathLike) -> list[Utterance]:
    """Utterances from a lhotse ``CutSet`` JSON-lines file (every supervision of every cut;
    a supervision's ``start`` is relative to its cut, the cut's to its recording)."""
    out = []
    for where, cut in _lines(Path(path)):
        if "recording" not in cut:
            raise LhotseError(f"{where}: not a cut (no 'recording'); for a RecordingSet pass its "
                              "SupervisionSet too: asr-prepare lhotse RECORDINGS OUT --supervisions SUPS")
        for sup in cut.get("supervisions") or []:
            out.append(_utterance(sup, cut["recording"], float(cut.get("start", 0.0)) + float(sup.get("start", 0.0)),
                                  where))
    return _checked(out, path)


def read_recordings_and_supervisions(recordings: str | os.PathLike,
                                     supervisions: str | os.PathLike) -> list[Utterance]:
    """Utterances from a lhotse ``RecordingSet`` and ``SupervisionSet`` (JSON lines)."""
    recs = {str(r.get("id")): r for _, r in _lines(Path(recordings))}
    out = []
    for where, sup in _lines(Path(supervisions)):
        rec = recs.get(str(sup.get("recording_id")))
        if rec is None:
            raise LhotseError(f"{where}: supervision {sup.get('id')!r} names recording {sup.get('recording_id')!r}, "
                              f"which {recordings} lacks")
        out.append(_utterance(sup, rec, float(sup.get("start", 0.0)), where))
    return _checked(out, supervisions)


def _checked(utterances: list[Utterance], path) -> list[Utterance]:
    if not utterances:
        raise LhotseError(f"{path}: no transcribed supervision found; nothing to convert")
    seen = set()
    for u in utterances:
        if u.id in seen:
            raise LhotseError(f"{path}: supervision id {u.id!r} appears twice; ids must be unique")
        seen.add(u.id)
    return utterances
