"""Manifests (NeMo's JSON lines), the dataset, padding, and duration-bucketed batches."""

from __future__ import annotations

import array
import contextlib
import json
import logging
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from asr.audio import load_audio
from asr.text import DEFAULT_CHARS, Vocabulary, describe_dropped
from asr.utils import UserError, atomic_open, text_lines

log = logging.getLogger(__name__)


class ManifestError(UserError):
    """A manifest line that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Utterance:
    """One manifest record. ``audio_filepath`` is resolved (absolute or relative to the
    working directory); ``duration`` is in seconds; ``offset`` (seconds, NeMo's key), when
    set, makes the utterance the ``duration`` seconds from there of a longer recording;
    ``extra`` keeps any other keys."""

    id: str
    audio_filepath: str
    duration: float
    text: str
    extra: dict = field(default_factory=dict, compare=False)
    offset: float | None = None

    def to_json(self, relative_to: str | os.PathLike | None = None) -> dict:
        path = self.audio_filepath
        if relative_to is not None:
            path = os.path.relpath(path, relative_to)
        record = {"audio_filepath": path, "duration": round(self.duration, 4), "text": self.text}
        if self.offset is not None:
            record["offset"] = round(self.offset, 4)
        return {**record, "id": self.id, **self.extra}


def read_manifest(path: str | os.PathLike, check_files: bool = True) -> list[Utterance]:
    """Read a JSON-lines manifest: ``{"audio_filepath": ..., "duration": s, "text": ...}`` a line.

    Relative audio paths are resolved against the manifest's folder. Blank lines are
    skipped. Any other key is kept in ``Utterance.extra``; ``id`` (or ``utt_id``) names
    the utterance, else ``<manifest stem>-<line>``.

    Raises
    ------
    ManifestError
        naming ``file:line``, what is wrong and how to fix it.
    """
    return [Utterance(*record) for record in _records(path, check_files)]


def _records(path: str | os.PathLike, check_files: bool) -> Iterator[tuple]:
    """``(id, audio path, duration, text, extra, offset)`` of each line, checked as
    :func:`read_manifest` describes."""
    path = Path(path)
    if path.is_dir():
        raise ManifestError(f"{path}: is a directory; expected a JSON-lines manifest file "
                            '({"audio_filepath": ..., "duration": ..., "text": ...} per line)')
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found; expected a JSON-lines file "
                            '({"audio_filepath": ..., "duration": ..., "text": ...} per line)')
    seen = set()
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            record = _parse_line(raw, path, lineno, check_files)
            if record is None:
                continue
            if record[0] in seen:
                raise ManifestError(f"{path}:{lineno}: duplicate id {record[0]!r}; ids must be unique")
            seen.add(record[0])
            yield record
    if not seen:
        raise ManifestError(f"{path}: manifest has no utterances")


def _parse_line(raw: bytes, path: Path, lineno: int, check_files: bool) -> tuple | None:
    where = f"{path}:{lineno}"
    try:
        line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a byte-order mark is fine
    except UnicodeDecodeError:
        raise ManifestError(f"{where}: not UTF-8 text; save the manifest as UTF-8") from None
    if not line.strip():
        return None
    try:
        rec = json.loads(line)
    except json.JSONDecodeError as e:
        raise ManifestError(f"{where}: not valid JSON ({e.msg}); each line must be one JSON object") from None
    if not isinstance(rec, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    missing = [k for k in ("audio_filepath", "duration", "text") if k not in rec]
    if missing:
        raise ManifestError(f"{where}: missing key(s) {', '.join(missing)}; "
                            "each line needs audio_filepath, duration and text")
    audio, duration, text = rec.pop("audio_filepath"), rec.pop("duration"), rec.pop("text")
    if not isinstance(audio, str) or not audio:
        raise ManifestError(f"{where}: audio_filepath must be a non-empty string")
    if isinstance(duration, bool) or not isinstance(duration, (int, float)) \
            or not math.isfinite(duration) or duration <= 0:
        raise ManifestError(f"{where}: duration must be a positive number of seconds, got {duration!r}")
    if not isinstance(text, str):
        raise ManifestError(f"{where}: text must be a string, got {type(text).__name__}")
    # os.path rather than pathlib: a few times faster, which counts at 281,241 lines.
    audio_path = os.path.expanduser(audio) if audio.startswith("~") else audio
    if not os.path.isabs(audio_path):
        audio_path = os.path.join(path.parent, audio_path)
    if check_files and not os.path.isfile(audio_path):
        raise ManifestError(f"{where}: audio file {audio_path} not found; "
                            "paths are resolved against the manifest's folder")
    offset = rec.pop("offset", None)
    if offset is not None and (isinstance(offset, bool) or not isinstance(offset, (int, float))
                               or not math.isfinite(offset) or offset < 0):
        raise ManifestError(f"{where}: offset must be seconds >= 0 into the recording, got {offset!r}")
    uid = str(rec.pop("id") if "id" in rec else rec.pop("utt_id", f"{path.stem}-{lineno}"))
    return uid, audio_path, float(duration), text, rec, None if offset is None else float(offset)


@contextlib.contextmanager
def stream_manifest(path: str | os.PathLike) -> Iterator[str]:
    """``path`` when it is a regular file; for a named pipe, process substitution
    (``<(...)``) or ``/dev/stdin``, a temporary copy, so the manifest can be read more than
    once. A pipe has no folder of its own: its relative audio paths are resolved against
    the current directory (written absolute into the copy)."""
    path = str(path)
    if os.path.isfile(path) or not os.path.exists(path):
        yield path  # read_manifest names the missing file
        return
    with open(path, "rb") as stream, tempfile.TemporaryDirectory(prefix="asr-manifest-") as tmp:
        copy = os.path.join(tmp, os.path.basename(path) or "stdin")
        with open(copy, "wb") as out:
            for raw in stream:
                out.write(_absolute_audio(raw))
        yield copy


def _absolute_audio(raw: bytes) -> bytes:
    """The line with a relative ``audio_filepath`` made absolute against the current
    directory; any other line as it is (read_manifest reports what is wrong with it)."""
    try:
        rec = json.loads(raw)
    except ValueError:
        return raw
    audio = rec.get("audio_filepath") if isinstance(rec, dict) else None
    if not isinstance(audio, str) or not audio or os.path.isabs(os.path.expanduser(audio)):
        return raw
    rec["audio_filepath"] = os.path.abspath(os.path.expanduser(audio))
    return (json.dumps(rec, ensure_ascii=False) + "\n").encode()


def manifest_lines(path: str | os.PathLike) -> list[tuple[int, str]]:
    """``(line number, line)`` of each non-blank line of a manifest: line ``i`` belongs to
    the ``i``-th utterance :func:`read_manifest` returns."""
    return [(n, line) for n, line in enumerate(text_lines(path, "manifest"), 1) if line.strip()]


def read_manifests(paths: str, check_files: bool = True) -> list[Utterance]:
    """Read one manifest or several, comma-separated (``a.jsonl,b.jsonl``), as one list
    in the order given: a corpus plus extra training data without merging files.

    Raises
    ------
    ManifestError
        as :func:`read_manifest` does, and for an id found in two of the manifests.
    """
    return [Utterance(*record) for record in _records_of(paths, check_files)]


def read_manifest_table(paths: str, check_files: bool = True) -> "UtteranceTable":
    """:func:`read_manifests` into an :class:`UtteranceTable` (no object per utterance is
    kept; ``extra`` keys are not): how training holds hundreds of thousands of utterances."""
    return UtteranceTable.from_records(_records_of(paths, check_files))


def _records_of(paths: str, check_files: bool) -> Iterator[tuple]:
    first: dict[str, str] = {}
    for path in (p.strip() for p in str(paths).split(",")):
        if not path:
            raise ManifestError(f"{paths!r}: empty manifest path in the comma-separated list")
        for record in _records(path, check_files):
            if record[0] in first:
                raise ManifestError(f"{path}: id {record[0]!r} is also in {first[record[0]]}; ids must be unique "
                                    "across the manifests trained on together")
            first[record[0]] = path
            yield record


class _Strings:
    """Many strings as one UTF-8 buffer and an offsets array (two objects, however many)."""

    def __init__(self, blob: bytes, ends: np.ndarray):
        self.blob, self.ends = blob, ends

    @classmethod
    def build(cls, strings: Iterable[str]) -> "_Strings":
        builder = _StringsBuilder()
        for text in strings:
            builder.add(text)
        return builder.build()

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, i: int) -> str:
        start = int(self.ends[i - 1]) if i else 0
        return self.blob[start:int(self.ends[i])].decode()

    def take(self, indices: np.ndarray) -> "_Strings":
        return _Strings.build(self[int(i)] for i in indices)

    @property
    def nbytes(self) -> int:
        return len(self.blob) + self.ends.nbytes


class _StringsBuilder:
    """Appends strings straight into a :class:`_Strings` buffer (no list of them is held)."""

    def __init__(self) -> None:
        self.blob, self.ends = bytearray(), array.array("q")

    def add(self, text: str) -> None:
        self.blob += text.encode()
        self.ends.append(len(self.blob))

    def build(self) -> _Strings:
        return _Strings(bytes(self.blob), np.array(self.ends, dtype=np.int64))


class UtteranceTable(Sequence):
    """Utterances as columns: ids, audio paths and texts in :class:`_Strings`, durations and
    offsets (NaN: none) in float arrays.

    It reads like a sequence of :class:`Utterance` (built on access, ``extra`` empty), but
    holds no Python object per utterance: LibriSpeech's 281,241 training utterances take
    tens of MB instead of about 320 MB as a list, and forked data-loader workers share it
    without copying (no per-utterance reference counts or garbage-collector headers for
    them to write; ``bench/data_scale.py`` measures both).
    """

    def __init__(self, ids: _Strings, paths: _Strings, texts: _Strings, durations: np.ndarray, offsets: np.ndarray):
        self.ids, self.paths, self.texts, self.durations, self.offsets = ids, paths, texts, durations, offsets

    @classmethod
    def from_records(cls, records: Iterable[tuple]) -> "UtteranceTable":
        # Straight into buffers and typed arrays: no list of strings is ever held.
        ids, paths, texts = _StringsBuilder(), _StringsBuilder(), _StringsBuilder()
        durations, offsets = array.array("d"), array.array("d")
        for uid, path, duration, text, _extra, offset in records:
            ids.add(uid)
            paths.add(path)
            texts.add(text)
            durations.append(duration)
            offsets.append(math.nan if offset is None else offset)
        return cls(ids.build(), paths.build(), texts.build(), np.array(durations, dtype=np.float64),
                   np.array(offsets, dtype=np.float64))

    @classmethod
    def from_utterances(cls, utterances: Iterable[Utterance]) -> "UtteranceTable":
        return cls.from_records((u.id, u.audio_filepath, u.duration, u.text, None, u.offset) for u in utterances)

    def __len__(self) -> int:
        return len(self.durations)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.take(np.arange(len(self))[key])
        i = int(key)
        offset = float(self.offsets[i])
        return Utterance(self.ids[i], self.paths[i], float(self.durations[i]), self.texts[i], {},
                         None if math.isnan(offset) else offset)

    def take(self, indices) -> "UtteranceTable":
        """The utterances at ``indices`` (in that order), as a new table."""
        indices = np.asarray(indices, dtype=np.int64)
        return UtteranceTable(self.ids.take(indices), self.paths.take(indices), self.texts.take(indices),
                              self.durations[indices], self.offsets[indices])

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in (self.ids, self.paths, self.texts, self.durations, self.offsets))


def write_manifest(path: str | os.PathLike, utterances: Iterable[Utterance], relative: bool = True) -> None:
    """Write utterances as JSON lines, atomically; audio paths relative to the manifest's
    folder when ``relative``."""
    path = Path(path)
    base = path.parent.resolve() if relative else None
    with atomic_open(path) as f:
        for u in utterances:
            rec = u.to_json(base)
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


_REPEAT = re.compile(r"(.)(?=\1)", re.DOTALL)


def ctc_min_frames(ids: Sequence[int] | str) -> int:
    """Frames CTC needs for a label (token ids, or a normalised text: one character a
    token): one per token plus a blank between repeated tokens."""
    if isinstance(ids, str):
        return len(ids) + len(_REPEAT.findall(ids))
    return len(ids) + sum(1 for a, b in zip(ids, ids[1:]) if a == b)


def drop_unalignable(utterances: Sequence[Utterance], vocab: Vocabulary,
                     steps: Callable[[float], int], name: str = "data") -> list[Utterance]:
    """Keep utterances whose label fits in the encoder output (``steps(duration)`` frames)
    and is not empty; log how many were dropped, and the characters outside the vocabulary
    that transcripts lose."""
    table = isinstance(utterances, UtteranceTable)
    texts = utterances.texts if table else [u.text for u in utterances]
    durations = utterances.durations if table else [u.duration for u in utterances]
    dropped: Counter = Counter()
    # characters: the normalised text's length is the label's (checked in C); subwords: encode
    label = vocab.normalize if vocab.units == "char" else vocab.encode
    keep = [i for i in range(len(utterances))
            if 0 < ctc_min_frames(label(texts[i], dropped)) <= steps(float(durations[i]))]
    if dropped:
        log.warning("%s: %s", name, describe_dropped(dropped))
    if len(keep) < len(utterances):
        log.warning("%s: dropped %d of %d utterances whose transcript is empty or too long "
                    "for CTC to align with the encoder output", name, len(utterances) - len(keep), len(utterances))
    if len(keep) == len(utterances):
        return utterances
    return utterances.take(keep) if table else [utterances[i] for i in keep]


class AudioDataset(Dataset):
    """Items are ``(waveform (samples,), token ids (labels,), index)``.

    ``transform(wave, rng, batch_rng)``, if given, is applied to each waveform
    (augmentation). The key may be an index, ``(index, seed)`` or ``(index, seed,
    batch_seed)`` (see :class:`DurationBatchSampler`); ``rng`` is seeded from ``seed`` and
    ``batch_rng`` from ``batch_seed`` (the same for every utterance of a batch, for draws
    that change the length), so augmentation does not depend on worker processes or
    resumption.
    """

    def __init__(self, utterances: Sequence[Utterance], vocab: Vocabulary, sample_rate: int,
                 transform: Callable[[torch.Tensor, np.random.Generator, np.random.Generator], torch.Tensor]
                 | None = None):
        # Columns, not a list of objects: forked workers then share it without copying.
        self.utterances = utterances if isinstance(utterances, UtteranceTable) else \
            UtteranceTable.from_utterances(utterances)
        self.vocab = vocab
        self.sample_rate = sample_rate
        self.transform = transform

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, key: int | tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, int]:
        i, seed, *batch_seed = key if isinstance(key, tuple) else (key, key)
        table = self.utterances
        offset = float(table.offsets[i])
        if math.isnan(offset):
            wave = load_audio(table.paths[i], self.sample_rate)
        else:
            wave = load_audio(table.paths[i], self.sample_rate, offset, float(table.durations[i]))
        if self.transform is not None:
            batch_rng = np.random.default_rng((batch_seed[0] if batch_seed else seed, 1))
            wave = self.transform(wave, np.random.default_rng(seed), batch_rng)
        return wave, torch.tensor(self.vocab.encode(table.texts[i]), dtype=torch.long), i


@dataclass
class Batch:
    """Padded batch: ``waves (batch, samples)``, ``wave_lengths (batch,)``,
    ``targets (batch, labels)`` (padded with 0), ``target_lengths (batch,)``, ``indices``;
    with :class:`FeatureCollate` also ``feats (batch, frames, n_mels)`` and ``frames (batch,)``."""

    waves: torch.Tensor
    wave_lengths: torch.Tensor
    targets: torch.Tensor
    target_lengths: torch.Tensor
    indices: list[int]
    feats: torch.Tensor | None = None
    frames: torch.Tensor | None = None

    def pin_memory(self) -> "Batch":
        self.waves, self.targets = self.waves.pin_memory(), self.targets.pin_memory()
        if self.feats is not None:
            self.feats = self.feats.pin_memory()
        return self


def collate(items: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
    waves = torch.nn.utils.rnn.pad_sequence([w for w, _, _ in items], batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence([t for _, t, _ in items], batch_first=True)
    return Batch(
        waves, torch.tensor([len(w) for w, _, _ in items]),
        targets, torch.tensor([len(t) for _, t, _ in items]),
        [i for _, _, i in items],
    )


class FeatureCollate:
    """:func:`collate`, then the features of the padded waves, in the loader worker.

    ``features(waves (batch, samples), lengths (batch,)) -> (feats (batch, frames, n_mels),
    frames (batch,))`` is the recognizer's own feature module (no trainable weights; its
    global statistics, if any, already fitted). CPU training uses it so that the training
    step's thread only trains while the worker, on another core, computes the next batch's
    log-mel features (about 4% of a step there)."""

    def __init__(self, features: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]):
        self.features = features

    def __call__(self, items: Sequence[tuple[torch.Tensor, torch.Tensor, int]]) -> Batch:
        batch = collate(items)
        with torch.no_grad():
            batch.feats, batch.frames = self.features(batch.waves, batch.wave_lengths)
        return batch


class DurationBatchSampler(Sampler[list[int]]):
    """Batches of similar duration whose padded size stays under ``max_seconds``.

    Utterances are sorted by duration (jittered by ``shuffle``, so batches differ between
    epochs), cut into batches with ``len(batch) * longest <= max_seconds`` and at most
    ``max_batch_size`` items, and the batch order is shuffled. Everything depends only on
    ``seed`` and the epoch (``set_epoch``), so a resumed run sees the same batches.
    With ``num_replicas > 1`` each rank takes every ``num_replicas``-th batch, and the
    batch count is trimmed to be equal on every rank. ``skip`` batches are left out at the
    start of the epoch (resuming inside an epoch). With ``item_seeds`` each key is
    ``(index, seed, batch_seed)`` for augmentation: ``seed`` a function of (seed, epoch,
    index), ``batch_seed`` the first item's ``seed``, shared by the batch.
    """

    def __init__(self, durations: Sequence[float], max_seconds: float, max_batch_size: int = 0,
                 shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0,
                 item_seeds: bool = False):
        if max_seconds <= 0:
            raise ValueError(f"max_seconds must be positive, got {max_seconds}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got rank {rank} of {num_replicas}")
        self.durations = np.asarray(durations, dtype=np.float64)
        self._cached: tuple = (None, [])  # (epoch, seed, shuffle) and its batches
        self.max_seconds = max_seconds
        self.max_batch_size = max_batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.num_replicas = num_replicas
        self.rank = rank
        self.item_seeds = item_seeds
        self.epoch = 0
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _all_batches(self) -> list[list[int]]:
        if self._cached[0] != (self.epoch, self.seed, self.shuffle):
            self._cached = ((self.epoch, self.seed, self.shuffle), self._make_batches())
        return self._cached[1]

    def _make_batches(self) -> list[list[int]]:
        rng = np.random.default_rng((self.seed * 1_000_003 + self.epoch) % 2**63)
        jitter = 1 + 0.1 * rng.random(len(self.durations)) if self.shuffle else 1.0
        order = np.argsort(self.durations * jitter, kind="stable").tolist()
        durations = self.durations.tolist()
        batches, batch, longest = [], [], 0.0
        for i in order:
            d = durations[i]
            too_many = self.max_batch_size and len(batch) >= self.max_batch_size
            if batch and (too_many or max(longest, d) * (len(batch) + 1) > self.max_seconds):
                batches.append(batch)
                batch, longest = [], 0.0
            batch.append(i)
            longest = max(longest, d)
        if batch:
            batches.append(batch)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[list]:
        batches = self._all_batches()
        per_rank = len(batches) // self.num_replicas if self.num_replicas > 1 else len(batches)
        for batch in batches[self.rank::self.num_replicas][self.skip:per_rank]:
            if self.item_seeds:
                seeds = [((self.seed * 1_000_003 + self.epoch) * 10_000_019 + i) % 2**63 for i in batch]
                yield [(i, s, seeds[0]) for i, s in zip(batch, seeds)]
            else:
                yield batch

    def __len__(self) -> int:
        n = len(self._all_batches())
        return max(0, (n // self.num_replicas if self.num_replicas > 1 else n) - self.skip)

    def padding_fraction(self) -> float:
        """Share of the padded batch area that is padding (lower is faster)."""
        padded = real = 0.0
        for b in self._all_batches():
            ds = self.durations[b]
            padded += ds.max() * len(ds)
            real += ds.sum()
        return 1 - real / padded if padded else 0.0


@dataclass
class DataConfig:
    """Manifests and batching. ``train_manifest`` may list several manifests, comma-separated
    (a corpus plus extra data). ``chars`` are the vocabulary's characters after the blank;
    ``numbers`` says what happens to numbers written in digits in the transcripts
    (``asr.text.NUMBERS``: ``auto`` spells them out in words unless ``chars`` has digits,
    ``spell``, ``keep`` or ``drop``). ``subwords`` > 0 trains a sentencepiece model of
    that many pieces (``subword_type`` ``unigram`` or ``bpe``) on the training transcripts'
    words and makes them the output units (:mod:`asr.subword`); 0 keeps characters."""

    train_manifest: str = "???"
    dev_manifest: str = "???"
    chars: str = DEFAULT_CHARS
    numbers: str = "auto"
    subwords: int = 0
    subword_type: str = "unigram"
    max_batch_seconds: float = 240.0
    max_batch_size: int = 64
    num_workers: int = 1
