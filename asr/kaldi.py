"""Kaldi data directories (``wav.scp``, ``text``, ``utt2spk`` / ``spk2utt``) to manifests.

``wav.scp`` entries are plain audio paths. A pipe command (``sox ... |``) is refused with a
message and never run, unless the caller allows it (``pipe_dir``; ``asr-prepare kaldi
--allow-pipes``); an archive offset (``foo.ark:123``) is refused. A ``segments`` file makes
each segment an utterance with an ``offset`` into its recording; ``utt2dur``/``reco2dur``
give durations without reading audio headers.

    from asr.kaldi import read_kaldi_dir
    utts = read_kaldi_dir("speechocean762/train")   # list[Utterance], "speaker" in extra
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from asr.audio import AudioError, audio_info, audio_suffix
from asr.data import Utterance
from asr.text import Vocabulary, describe_dropped
from asr.utils import UserError, atomic_open, progress, text_lines

log = logging.getLogger(__name__)
_ARK_OFFSET = re.compile(r"\.(ark|scp):\d+$")


class KaldiError(UserError):
    """A Kaldi data directory that cannot be read; the message names the file:line and the fix."""


def _read_table(path: Path, required: bool = True) -> list[tuple[int, str, str]]:
    """``(line number, key, rest of line)`` for each non-blank line of a Kaldi table."""
    if not path.is_file():
        if required:
            raise KaldiError(f"{path}: not found; a Kaldi data directory needs wav.scp and text "
                             "(and utt2spk or spk2utt)")
        return []
    rows = []
    for lineno, line in enumerate(text_lines(path, f"Kaldi {path.name} table"), 1):
        line = line.strip()
        if not line:
            continue
        key, *rest = line.split(maxsplit=1)
        rows.append((lineno, key, rest[0].strip() if rest else ""))
    return rows


def _unique(rows: list[tuple[int, str, str]], path: Path) -> dict[str, tuple[int, str]]:
    out: dict[str, tuple[int, str]] = {}
    for lineno, key, rest in rows:
        if key in out:
            raise KaldiError(f"{path}:{lineno}: duplicate key {key!r} (first on line {out[key][0]}); "
                             "keys must be unique (utils/fix_data_dir.sh removes duplicates)")
        out[key] = (lineno, rest)
    return out


def read_wav_scp(path: str | os.PathLike, pipe_dir: str | os.PathLike | None = None) -> dict[str, str]:
    """``{utterance id: audio path as written}``, refusing archive offsets, and pipe
    commands unless ``pipe_dir`` is given: then each command runs once (named on stderr
    first) and its output is kept as a file in ``pipe_dir`` (:func:`run_pipe`)."""
    path = Path(path)
    entries = _unique(_read_table(path), path)
    out = {}
    for key, (lineno, value) in entries.items():
        where = f"{path}:{lineno}"
        if not value:
            raise KaldiError(f"{where}: utterance {key!r} has no audio path; expected '<utt-id> <path>'")
        if value.endswith("|") or value.startswith("|"):
            if pipe_dir is None:
                raise KaldiError(f"{where}: utterance {key!r} is a pipe command ({value[:60]}); commands are not "
                                 "run unless you pass --allow-pipes (for data directories you trust), or convert "
                                 "the audio to plain files (e.g. with sox or ffmpeg) and list their paths")
            value = str(run_pipe(value.strip("| "), Path(pipe_dir), key, where))
        if _ARK_OFFSET.search(value):
            raise KaldiError(f"{where}: utterance {key!r} points into an archive ({value}); "
                             "expected a plain audio file path")
        out[key] = value
    return out


def run_pipe(command: str, out_dir: Path, key: str, where: str) -> Path:
    """Run a ``wav.scp`` pipe command (the user allowed it) and keep its audio output as
    ``out_dir/<key>.<format>``; a failing command is a :class:`KaldiError` naming it."""
    print(f"running ({where}): {command}", file=sys.stderr, flush=True)
    try:
        done = subprocess.run(command, shell=True, capture_output=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise KaldiError(f"{where}: the command for {key!r} ran for 10 minutes without finishing: {command}") from None
    if done.returncode != 0 or not done.stdout:
        reason = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise KaldiError(f"{where}: the command for {key!r} failed (exit {done.returncode}: {reason[0][:120]}): "
                         f"{command}")
    target = out_dir / f"{key}{audio_suffix(done.stdout)}"
    with atomic_open(target, "wb") as f:
        f.write(done.stdout)
    return target.resolve()


def read_utt2spk(data_dir: str | os.PathLike) -> dict[str, str]:
    """``{utterance id: speaker}`` from ``utt2spk``, else from ``spk2utt``, else empty."""
    data_dir = Path(data_dir)
    if (data_dir / "utt2spk").is_file():
        path = data_dir / "utt2spk"
        return {k: v.split()[0] for k, (_, v) in _unique(_read_table(path), path).items() if v}
    if (data_dir / "spk2utt").is_file():
        out = {}
        for _, spk, utts in _read_table(data_dir / "spk2utt"):
            for u in utts.split():
                out[u] = spk
        return out
    return {}


def _audio_root(data_dir: Path, sample: str, audio_root: str | os.PathLike | None) -> Path:
    if audio_root is not None:
        root = Path(audio_root)
        if not root.is_dir():
            raise KaldiError(f"--audio-root {root}: not a folder; pass the folder wav.scp paths start from")
        return root
    candidates = [data_dir, data_dir.parent, data_dir.parent.parent, Path.cwd()]
    for root in candidates:
        if (root / sample).is_file():
            return root
    raise KaldiError(f"{data_dir / 'wav.scp'}: relative path {sample!r} not found under "
                     f"{', '.join(str(c) for c in dict.fromkeys(candidates))}; pass --audio-root DIR")


def read_kaldi_dir(data_dir: str | os.PathLike, audio_root: str | os.PathLike | None = None,
                   vocab: Vocabulary | None = None, workers: int = 4,
                   pipe_dir: str | os.PathLike | None = None) -> list[Utterance]:
    """Read a Kaldi data directory into utterances with measured durations.

    Parameters
    ----------
    data_dir : path
        Folder with ``wav.scp`` and ``text``; ``utt2spk`` or ``spk2utt`` give speakers
        (else each utterance is its own speaker).
    audio_root : path, optional
        Folder that relative ``wav.scp`` paths start from; by default the first of the
        data dir, its parent, its grandparent and the working directory that holds them.
    vocab : Vocabulary, optional
        Normalises the transcripts (lowercase, punctuation removed); default characters.

    Returns
    -------
    list of Utterance
        In ``wav.scp`` order, absolute audio paths, ``extra={"speaker": ...}``.
        Utterances lacking a transcript, or whose normalised transcript is empty, are
        left out with a warning (as Kaldi's ``fix_data_dir.sh`` does).

    Raises
    ------
    KaldiError
        Missing files, duplicate keys, pipe or archive entries in ``wav.scp``, missing
        or unreadable audio, or nothing left to write.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise KaldiError(f"{data_dir}: not a folder; pass a Kaldi data directory (holding wav.scp and text)")
    segments = read_segments(data_dir / "segments") if (data_dir / "segments").is_file() else None
    wavs = _utterance_audio(data_dir, read_wav_scp(data_dir / "wav.scp", pipe_dir), segments)
    text_path = data_dir / "text"
    texts = {k: v for k, (_, v) in _unique(_read_table(text_path), text_path).items()}
    utt2spk = read_utt2spk(data_dir)
    vocab = vocab or Vocabulary()

    no_text = [k for k in wavs if k not in texts]
    no_audio = [k for k in texts if k not in wavs]
    if no_text:
        log.warning("%s: %d utterance(s) in wav.scp have no transcript in text (e.g. %s); left out",
                    data_dir, len(no_text), no_text[0])
    if no_audio:
        log.warning("%s: %d transcript(s) in text have no wav.scp entry (e.g. %s); left out",
                    data_dir, len(no_audio), no_audio[0])
    normalized = _normalized(text_path, {k: texts[k] for k in wavs if k in texts}, vocab)
    keys = [k for k in wavs if normalized.get(k)]
    if not keys:
        raise KaldiError(f"{data_dir}: no utterance has both a wav.scp entry and a non-empty transcript; "
                         "check that wav.scp and text use the same utterance ids")

    relative = next((wavs[k] for k in keys if not os.path.isabs(wavs[k])), None)
    root = _audio_root(data_dir, relative, audio_root) if relative is not None else None
    paths = {k: (Path(wavs[k]) if os.path.isabs(wavs[k]) else root / wavs[k]).resolve() for k in keys}

    known = _read_durations(data_dir / ("reco2dur" if segments is not None else "utt2dur"))

    def duration(key: str) -> float:
        p = paths[key]
        if not p.is_file():
            raise KaldiError(f"{data_dir / 'wav.scp'}: audio for {key!r} not found at {p}; "
                             "fix the path or pass --audio-root DIR")
        name = segments[key][0] if segments is not None else key
        if name in known:  # utt2dur / reco2dur spare reading every header
            return known[name]
        try:
            return audio_info(p)[0]
        except AudioError as e:
            raise KaldiError(f"{data_dir / 'wav.scp'}: utterance {key!r}: {e}") from None

    with ThreadPoolExecutor(max(1, workers)) as pool:
        durations = list(progress(pool.map(duration, keys), len(keys), "reading audio headers"))
    return [_utterance(k, str(paths[k]), d, normalized[k], utt2spk.get(k, k), segments, data_dir)
            for k, d in zip(keys, durations)]


def _normalized(text_path: Path, texts: dict[str, str], vocab: Vocabulary) -> dict[str, str]:
    """Transcripts normalised by ``vocab``; dropped characters and transcripts left empty
    (which are then left out) are reported."""
    dropped: Counter = Counter()
    normalized = {k: vocab.normalize(t, dropped) for k, t in texts.items()}
    if dropped:
        log.warning("%s: %s", text_path, describe_dropped(dropped))
    empty = [k for k, t in normalized.items() if not t]
    if empty:
        log.warning("%s: %d transcript(s) are empty after normalisation (e.g. %s); left out",
                    text_path, len(empty), empty[0])
    return normalized


def _utterance_audio(data_dir: Path, recordings: dict[str, str],
                     segments: dict[str, tuple[str, float, float]] | None) -> dict[str, str]:
    """Utterance id -> audio path: ``wav.scp`` itself, or through ``segments`` (recordings
    that no segment names are not utterances)."""
    if segments is None:
        return recordings
    unknown = [u for u, (rec, _, _) in segments.items() if rec not in recordings]
    if unknown:
        raise KaldiError(f"{data_dir / 'segments'}: {len(unknown)} segment(s) name a recording that wav.scp "
                         f"lacks (e.g. {unknown[0]!r} in {segments[unknown[0]][0]!r}); fix segments or wav.scp")
    return {u: recordings[rec] for u, (rec, _, _) in segments.items()}


def _utterance(key: str, path: str, duration: float, text: str, speaker: str,
               segments: dict[str, tuple[str, float, float]] | None, data_dir: Path) -> Utterance:
    """The utterance ``key``; ``duration`` is its file's, or its recording's for a segment."""
    if segments is None:
        return Utterance(key, path, duration, text, {"speaker": speaker})
    rec, start, end = segments[key]
    end = duration if end < 0 else end  # Kaldi: an end of -1 means the end of the recording
    if end > duration + 0.01:
        raise KaldiError(f"{data_dir / 'segments'}: segment {key!r} ends at {end:.2f} s, after its recording "
                         f"{rec!r} ({duration:.2f} s); fix the segment times")
    return Utterance(key, path, end - start, text, {"speaker": speaker, "recording": rec}, offset=start)


def read_segments(path: Path) -> dict[str, tuple[str, float, float]]:
    """Kaldi ``segments``: ``utterance recording start end`` (seconds; end -1: to the end)."""
    out = {}
    for lineno, key, rest in _read_table(path):
        parts = rest.split()
        try:
            rec, start, end = parts[0], float(parts[1]), float(parts[2])
            if len(parts) != 3 or start < 0 or (end != -1 and end <= start):
                raise ValueError
        except (ValueError, IndexError):
            raise KaldiError(f"{path}:{lineno}: expected 'utterance recording start end' with 0 <= start < end "
                             f"(seconds; end -1 for the end of the recording), got {key} {rest!r}") from None
        if key in out:
            raise KaldiError(f"{path}:{lineno}: utterance {key!r} appears twice; ids must be unique")
        out[key] = (rec, start, end)
    return out


def _read_durations(path: Path) -> dict[str, float]:
    """``utt2dur`` / ``reco2dur``: key and seconds a line; empty when the file is absent."""
    out = {}
    for lineno, key, rest in _read_table(path, required=False):
        try:
            out[key] = float(rest)
        except ValueError:
            raise KaldiError(f"{path}:{lineno}: expected a key and its duration in seconds, got {rest!r}") from None
    return out
