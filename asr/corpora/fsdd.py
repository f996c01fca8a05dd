"""The Free Spoken Digit Dataset (FSDD) as connected digits (TIDIGITS-style).

FSDD holds isolated digits, ``recordings/{digit}_{speaker}_{index}.wav`` (8 kHz, six
speakers at v1.0.10). :func:`prepare_digits` joins one speaker's recordings into
connected-digit utterances, split by speaker (``asr-prepare digits``);
:func:`synthesize_digits` adds eSpeak NG digit strings as extra training speakers::

    corpus = download_fsdd("exp/digits/download")
    prepare_digits(corpus, "exp/digits/data")   # {train,dev,test}.jsonl, wav/, lexicon.txt
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import load_audio
from asr.corpora.common import PrepareError
from asr.data import Utterance, write_manifest
from asr.utils import atomic_open

log = logging.getLogger(__name__)

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")
#: Default held-out speakers (the rest train): lucas for dev, yweweler for test.
FSDD_DEV_SPEAKERS = ("lucas",)
FSDD_TEST_SPEAKERS = ("yweweler",)


FSDD_URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
FSDD_PER_SPEAKER = 500
#: sha256 over the lines "<file name> <sha256 of the file>\n", sorted by name, of the
#: recordings of george, jackson, lucas and yweweler at release v1.0.10 (commit 26eb9aa).
#: GitHub publishes no checksum for its release archives, so the archive is verified by
#: its content: these 2,000 recordings byte for byte, and 500 recordings per speaker.
FSDD_DIGEST_SPEAKERS = ("george", "jackson", "lucas", "yweweler")
FSDD_DIGEST = "c0b37b3904df2382e79a5c422420d4a7140f1660276727ad750fa151279fc63f"


def fsdd_digest(recordings_dir: str | os.PathLike, speakers: Sequence[str] = FSDD_DIGEST_SPEAKERS) -> str:
    """The content digest of ``speakers``' recordings (see :data:`FSDD_DIGEST`)."""
    import hashlib

    from asr.download import file_digest

    lines = [f"{p.name} {file_digest(p)}\n" for p in sorted(Path(recordings_dir).iterdir(), key=lambda p: p.name)
             if (m := FSDD_NAME.match(p.name)) and m.group(2) in speakers]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def download_fsdd(dest_dir: str | os.PathLike, url: str = FSDD_URL) -> Path:
    """Download and unpack FSDD v1.0.10 under ``dest_dir``; verify it; return the corpus
    folder (holding ``recordings/``)."""
    from asr.download import download, extract

    dest_dir = Path(dest_dir)
    corpus = dest_dir / "free-spoken-digit-dataset-1.0.10"
    if not (dest_dir / ".fsdd.verified").exists():
        archive = download(url, dest_dir / "fsdd-v1.0.10.tar.gz")
        extract(archive, dest_dir)
        recordings = find_fsdd_recordings(corpus)
        counts = {s: len(recordings.get(s, [])) for s in FSDD_SPEAKERS}
        if any(n != FSDD_PER_SPEAKER for n in counts.values()) or fsdd_digest(corpus / "recordings") != FSDD_DIGEST:
            raise PrepareError(f"{archive}: the recordings do not match FSDD v1.0.10 (per speaker: {counts}); "
                               f"delete {dest_dir} and download again")
        with atomic_open(dest_dir / ".fsdd.verified") as f:
            f.write(FSDD_DIGEST + "\n")
    return corpus


def find_fsdd_recordings(corpus_dir: str | os.PathLike) -> dict[str, list[tuple[int, Path]]]:
    """``{speaker: [(digit, path), ...]}`` from ``{digit}_{speaker}_{index}.wav`` files in
    ``corpus_dir`` or its ``recordings/`` folder."""
    root = Path(corpus_dir)
    if not root.is_dir():
        raise PrepareError(f"{root}: FSDD folder not found; pass the folder holding recordings/ "
                           "(or leave --corpus-dir out to download the corpus)")
    if (root / "recordings").is_dir():
        root = root / "recordings"
    found: dict[str, list[tuple[int, Path]]] = defaultdict(list)
    for p in sorted(root.iterdir()):
        m = FSDD_NAME.match(p.name)
        if m:
            found[m.group(2)].append((int(m.group(1)), p))
    if not found:
        raise PrepareError(f"{root}: no FSDD recordings named {{digit}}_{{speaker}}_{{index}}.wav; "
                           "pass the FSDD folder (the one holding recordings/)")
    return dict(found)


def _split_recordings(recordings: dict[str, list[tuple[int, Path]]], dev_speakers: Sequence[str],
                      test_speakers: Sequence[str]) -> dict[str, dict[str, list[tuple[int, Path]]]]:
    unknown = sorted((set(dev_speakers) | set(test_speakers)) - set(recordings))
    if unknown:
        raise PrepareError(f"speaker(s) {', '.join(unknown)} not in the corpus; "
                           f"it has {', '.join(sorted(recordings))}")
    held_out = set(dev_speakers) | set(test_speakers)
    train = {s: r for s, r in recordings.items() if s not in held_out}
    if not train or not dev_speakers or not test_speakers:
        raise PrepareError("need at least one training, one dev and one test speaker; "
                           f"the corpus has {', '.join(sorted(recordings))}")
    dev: dict[str, list] = {}
    test: dict[str, list] = {}
    for s in held_out:
        recs = recordings[s]
        if s in dev_speakers and s in test_speakers:  # one speaker for both: disjoint recordings
            dev[s], test[s] = recs[0::2], recs[1::2]
        elif s in dev_speakers:
            dev[s] = recs
        else:
            test[s] = recs
    return {"train": train, "dev": dev, "test": test}


def _write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    with atomic_open(path, "wb") as f:
        sf.write(f, wave, sample_rate, subtype="PCM_16", format="WAV")


def build_digit_string(clips: Sequence[np.ndarray], rng: np.random.Generator, sample_rate: int = 16000,
                       pause: tuple[float, float] = (0.0, 0.35), edge: tuple[float, float] = (0.05, 0.4),
                       gain_db: tuple[float, float] = (-6.0, 6.0), floor_db: tuple[float, float] = (-70.0, -50.0),
                       trim_prob: float = 0.0, trim_db: tuple[float, float] = (15.0, 30.0)) -> np.ndarray:
    """Join isolated digit recordings ``(samples,)`` into one utterance ``(samples,)``.

    Random silence before, between (``pause`` seconds) and after (``edge``) the digits,
    a random gain per digit (``gain_db``), and a faint white-noise floor (``floor_db``
    relative to full scale) so the pauses are not digital silence. Peaks stay below 0.99.

    With probability ``trim_prob`` a digit is first cut to the part louder than its peak
    minus a random ``trim_db`` (``librosa.effects.trim``): an aggressive endpointer's cut,
    which drops weak onsets and codas such as the fricatives of "six" (0.55 s -> 0.2-0.4 s
    for an FSDD speaker), as some speakers' recordings already are.
    """
    pieces = [np.zeros(int(rng.uniform(*edge) * sample_rate), np.float32)]
    frame = max(int(0.016 * sample_rate), 4)
    for i, clip in enumerate(clips):
        if i:
            pieces.append(np.zeros(int(rng.uniform(*pause) * sample_rate), np.float32))
        if trim_prob and rng.random() < trim_prob:
            import librosa  # slow to import; only needed here

            clip, _ = librosa.effects.trim(clip, top_db=rng.uniform(*trim_db), frame_length=frame,
                                           hop_length=frame // 4)
        pieces.append(clip * np.float32(10 ** (rng.uniform(*gain_db) / 20)))
    pieces.append(np.zeros(int(rng.uniform(*edge) * sample_rate), np.float32))
    wave = np.concatenate(pieces)
    wave += rng.normal(size=len(wave)).astype(np.float32) * np.float32(10 ** (rng.uniform(*floor_db) / 20))
    peak = float(np.abs(wave).max())
    if peak > 0.99:
        wave *= np.float32(0.99 / peak)
    return wave


def prepare_digits(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike,
                   dev_speakers: Sequence[str] = FSDD_DEV_SPEAKERS, test_speakers: Sequence[str] = FSDD_TEST_SPEAKERS,
                   n_train: int = 2000, n_dev: int = 300, n_test: int = 500, max_digits: int = 7,
                   sample_rate: int = 16000, seed: int = 0, trim_prob: float = 0.0) -> dict[str, list[Utterance]]:
    """Build connected-digit utterances (1 to ``max_digits`` digits) from FSDD recordings.

    Each utterance joins recordings of one speaker (see :func:`build_digit_string`),
    resampled to ``sample_rate``. Speakers in ``dev_speakers`` / ``test_speakers`` never
    occur in training; a speaker in both gives its even-indexed recordings to dev and the
    odd ones to test. ``trim_prob``: the share of training digits cut tight by
    :func:`build_digit_string` (dev and test recordings are never cut). Writes
    ``out_dir/wav/<split>/*.wav``, ``out_dir/<split>.jsonl`` (with a ``speaker`` key) and
    ``out_dir/lexicon.txt`` (the ten words, for lexicon-constrained beam search), and
    returns the utterances by split.
    """
    out_dir = Path(out_dir)
    recordings = find_fsdd_recordings(corpus_dir)
    splits = _split_recordings(recordings, list(dev_speakers), list(test_speakers))
    counts = {"train": n_train, "dev": n_dev, "test": n_test}
    cache: dict[Path, np.ndarray] = {}
    result = {}
    with atomic_open(out_dir / "lexicon.txt") as f:
        f.write("".join(f"{w}\n" for w in DIGIT_WORDS))
    for split_index, (split, by_speaker) in enumerate(splits.items()):
        rng = np.random.default_rng([seed, split_index])
        speakers = sorted(by_speaker)
        utts = []
        for i in range(counts[split]):
            spk = speakers[i % len(speakers)]
            recs = by_speaker[spk]
            chosen = [recs[j] for j in rng.integers(len(recs), size=rng.integers(1, max_digits + 1))]
            clips = []
            for _, path in chosen:
                if path not in cache:
                    cache[path] = load_audio(path, sample_rate).numpy()
                clips.append(cache[path])
            wave = build_digit_string(clips, rng, sample_rate, trim_prob=trim_prob if split == "train" else 0.0)
            uid = f"{split}-{spk}-{i:05d}"
            path = out_dir / "wav" / split / f"{uid}.wav"
            _write_wav(path, wave, sample_rate)
            text = " ".join(DIGIT_WORDS[d] for d, _ in chosen)
            utts.append(Utterance(uid, str(path), len(wave) / sample_rate, text, {"speaker": spk}))
        write_manifest(out_dir / f"{split}.jsonl", utts)
        result[split] = utts
        log.info("%s: %d utterances, %.2f h, speakers %s", split, len(utts),
                 sum(u.duration for u in utts) / 3600, ", ".join(speakers))
    return result


def synthesize_digits(out_dir: str | os.PathLike, n: int, max_digits: int = 7, sample_rate: int = 16000,
                      seed: int = 0) -> list[Utterance]:
    """Speak ``n`` random strings of 1 to ``max_digits`` digits with random eSpeak NG voices
    (:func:`asr.synth.random_voice`: 47 variants, US or British English, random rate and
    pitch), as extra training speakers for a corpus with few. Writes
    ``out_dir/wav/synthetic/*.wav`` and ``out_dir/synthetic.jsonl`` (``speaker`` is the voice).
    """
    from asr.synth import random_voice, write_corpus

    out_dir = Path(out_dir)
    rng = np.random.default_rng([seed, 99])
    items = []
    for i in range(n):
        text = " ".join(DIGIT_WORDS[d] for d in rng.integers(10, size=rng.integers(1, max_digits + 1)))
        items.append((f"synthetic-{i:05d}", text, random_voice(rng)))
    utts = write_corpus(out_dir / "wav" / "synthetic", items, sample_rate, seed, out_dir / "synthetic.jsonl")
    log.info("synthetic: %d utterances, %.2f h, %d voices", len(utts), sum(u.duration for u in utts) / 3600,
             len({u.extra["speaker"] for u in utts}))
    return utts
