"""Hugging Face datasets to manifests: a dataset saved with ``save_to_disk``, a folder of
Parquet files, or an ``audiofolder`` (audio files and a ``metadata.csv``/``.jsonl``, read
directly), with an audio column and a text column.

Audio is never decoded here (``Audio(decode=False)``): a file the dataset points to is
referenced where it is; audio held as bytes is written once to ``OUT.audio/``. Nothing
is downloaded (offline mode is forced). Needs the ``datasets`` package
(``pip install 'asr[interop]'``)::

    asr-prepare hf my_dataset/ train.jsonl --text-column sentence --split train
"""

from __future__ import annotations

import os
from pathlib import Path

from asr.audio import AudioError, audio_info, audio_suffix
from asr.data import Utterance
from asr.utils import UserError, atomic_open


class HFError(UserError):
    """A dataset that cannot be converted; the message names it and the fix."""


def load_local(path: str | os.PathLike, split: str | None = None):
    """The ``datasets.Dataset`` at ``path`` (saved to disk, Parquet files or an audiofolder),
    the named ``split`` of a ``DatasetDict`` (the only one when there is one)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # local files only, never the network
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise HFError("reading Hugging Face datasets needs the datasets package: pip install 'asr[interop]'") from None
    path = Path(path)
    if not path.exists():
        raise HFError(f"{path}: not found; pass a folder written by save_to_disk, Parquet files or an audiofolder")
    if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
        data = datasets.load_from_disk(str(path))
    elif path.suffix == ".parquet" or list(path.glob("*.parquet")) or list(path.glob("*/*.parquet")):
        files = [str(path)] if path.is_file() else sorted(str(p) for p in path.rglob("*.parquet"))
        data = datasets.load_dataset("parquet", data_files=files)
    else:
        raise HFError(f"{path}: neither a save_to_disk folder nor Parquet files (nor an audiofolder with a "
                      "metadata.csv or metadata.jsonl); point at the dataset's folder")
    if isinstance(data, datasets.DatasetDict):
        if split is None and len(data) == 1:
            split = next(iter(data))
        if split not in data:
            raise HFError(f"{path}: splits {sorted(data)}; choose one with --split")
        data = data[split]
    return data


def read_dataset(path: str | os.PathLike, out_audio: str | os.PathLike, text_column: str = "text",
                 audio_column: str = "audio", split: str | None = None,
                 speaker_column: str | None = None) -> list[Utterance]:
    """Utterances of a local Hugging Face dataset (see :func:`load_local`); audio held as
    bytes is written to ``out_audio/<row>.<ext>``."""
    folder = Path(path)
    if folder.is_dir() and _metadata_files(folder):
        return read_audiofolder(folder, text_column, speaker_column, split)
    import datasets

    data = load_local(path, split)
    for column in (audio_column, text_column, speaker_column):
        if column and column not in data.column_names:
            raise HFError(f"{path}: no column {column!r}; the columns are {data.column_names} "
                          "(name them with --audio-column / --text-column / --speaker-column)")
    data = data.cast_column(audio_column, datasets.Audio(decode=False))
    out = []
    for i, row in enumerate(data):
        audio, text = row[audio_column] or {}, row[text_column]
        where = f"{path}: row {i}"
        if not isinstance(text, str):
            raise HFError(f"{where}: {text_column!r} is not text ({type(text).__name__})")
        file = _audio_file(audio, Path(out_audio), i, where)
        try:
            duration = audio_info(file)[0]
        except AudioError as e:
            raise HFError(f"{where}: {e}") from None
        extra = {"speaker": str(row[speaker_column])} if speaker_column else {}
        out.append(Utterance(f"{Path(path).name}-{i:06d}", str(file), duration, text, extra))
    if not out:
        raise HFError(f"{path}: the dataset has no rows")
    return out


def _metadata_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("metadata.*") if p.suffix in (".csv", ".jsonl"))


def read_audiofolder(folder: Path, text_column: str = "text", speaker_column: str | None = None,
                     split: str | None = None) -> list[Utterance]:
    """An ``audiofolder``: audio files beside a ``metadata.csv``/``metadata.jsonl`` whose
    ``file_name`` column names them (relative to the metadata file), read directly (the
    ``datasets`` loader would decode every file, which needs torchcodec). ``split``: only
    the metadata files under a folder of that name (``train/metadata.csv``)."""
    import csv
    import json

    files = [m for m in _metadata_files(folder) if split is None or split in m.relative_to(folder).parts[:-1]]
    out = []
    for meta in files:
        if meta.suffix == ".csv":
            with open(meta, newline="", encoding="utf-8-sig") as f:
                rows = list(csv.DictReader(f))
        else:
            rows = [json.loads(line) for line in meta.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        for i, row in enumerate(rows, 2 if meta.suffix == ".csv" else 1):
            where = f"{meta}:{i}"
            missing = [c for c in ("file_name", text_column, speaker_column) if c and c not in row]
            if missing:
                raise HFError(f"{where}: no column {missing[0]!r}; the columns are {sorted(row)} "
                              "(name them with --text-column / --speaker-column)")
            audio = (meta.parent / row["file_name"]).resolve()
            try:
                duration = audio_info(audio)[0]
            except AudioError as e:
                raise HFError(f"{where}: {e}") from None
            extra = {"speaker": str(row[speaker_column])} if speaker_column else {}
            out.append(Utterance(f"{folder.name}-{len(out):06d}", str(audio), duration, str(row[text_column]), extra))
    if not out:
        raise HFError(f"{folder}: no rows in its metadata files" + (f" for split {split!r}" if split else ""))
    return out


def _audio_file(audio: dict, out_audio: Path, index: int, where: str) -> Path:
    if audio.get("bytes"):
        data = audio["bytes"]
        suffix = audio_suffix(data, Path(audio.get("path") or "x.wav").suffix or ".wav")
        target = out_audio / f"{index:06d}{suffix}"
        with atomic_open(target, "wb") as f:
            f.write(data)
        return target.resolve()
    if audio.get("path") and Path(audio["path"]).is_file():
        return Path(audio["path"]).resolve()
    raise HFError(f"{where}: the audio is neither bytes nor an existing file ({audio.get('path')!r})")
