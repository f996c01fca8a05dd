"""Corpus preparation: real corpora to ``train/dev/test`` JSON-lines manifests.

- :func:`prepare_digits`: connected digits (TIDIGITS-style) built from the Free Spoken
  Digit Dataset's isolated recordings, split by speaker.
- :func:`prepare_librispeech`: LibriSpeech subsets (``LibriSpeech/<subset>/<spk>/<chapter>``).
- :func:`split_by_speaker`: hold whole speakers out of training.
- Kaldi data directories: :mod:`asr.kaldi`.

The ``asr-prepare`` command exposes them::

    asr-prepare kaldi DATA_DIR OUT.jsonl [--audio-root DIR]
    asr-prepare split ALL.jsonl --train TRAIN.jsonl --dev DEV.jsonl [--test TEST.jsonl] [--dev-fraction 0.1]
    asr-prepare digits FSDD_DIR OUT_DIR [--dev-speakers lucas] [--test-speakers yweweler] [--synthetic N]
    asr-prepare librispeech LIBRISPEECH_DIR OUT_DIR --train-subsets train-clean-100
    asr-prepare download {fsdd,speechocean762,librispeech} DEST_DIR [--subsets ...]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import audio_info, load_audio
from asr.data import Utterance, read_manifest, write_manifest
from asr.text import NUMBERS, NUMBERS_HELP, Vocabulary, vocab_from_options
from asr.utils import HelpFormatter, UserError, atomic_open, progress, run_cli, text_lines

log = logging.getLogger(__name__)


class PrepareError(UserError):
    """A corpus that cannot be prepared; the message names the file or folder and the fix."""


# --------------------------------------------------------------------------- speakers


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


# --------------------------------------------------------------------------- FSDD digits

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
    utts = write_corpus(out_dir / "wav" / "synthetic", items, sample_rate, seed)
    for u in utts:
        u.extra["speaker"] = u.extra.pop("voice")
    write_manifest(out_dir / "synthetic.jsonl", utts)
    log.info("synthetic: %d utterances, %.2f h, %d voices", len(utts), sum(u.duration for u in utts) / 3600,
             len({u.extra["speaker"] for u in utts}))
    return utts


# --------------------------------------------------------------------------- LibriSpeech

LIBRISPEECH_SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other",
                       "train-clean-100", "train-clean-360", "train-other-500")


def read_librispeech_subset(subset_dir: str | os.PathLike, workers: int = 8) -> list[Utterance]:
    """Utterances of one LibriSpeech subset folder (``<spk>/<chapter>/<spk>-<chapter>.trans.txt``
    and ``.flac`` files), with measured durations and ``speaker``/``chapter`` keys."""
    root = Path(subset_dir)
    if not root.is_dir():
        raise PrepareError(f"{root}: LibriSpeech subset folder not found; expected "
                           "LibriSpeech/<subset>/<speaker>/<chapter>/ (download it with recipes/librispeech/run.sh)")
    vocab = Vocabulary()
    items = []
    for trans in sorted(root.glob("*/*/*.trans.txt")):
        spk, chapter = trans.parent.parent.name, trans.parent.name
        for lineno, line in enumerate(text_lines(trans, "transcript"), 1):
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{uid}.flac"
            if not audio.is_file():
                raise PrepareError(f"{trans}:{lineno}: audio {audio.name} not found beside the transcript; "
                                   "is the subset fully extracted?")
            items.append((uid, audio, vocab.normalize(text), spk, chapter))
    if not items:
        raise PrepareError(f"{root}: no <speaker>/<chapter>/*.trans.txt transcripts; pass LibriSpeech/<subset>")
    with ThreadPoolExecutor(workers) as pool:
        durations = list(progress(pool.map(lambda it: audio_info(it[1])[0], items), len(items),
                                  "reading audio headers"))
    return [Utterance(uid, str(audio), d, text, {"speaker": spk, "chapter": chapter})
            for (uid, audio, text, spk, chapter), d in zip(items, durations)]


def prepare_librispeech(corpus_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        train_subsets: Sequence[str] = ("train-clean-100",), dev_subset: str = "dev-clean",
                        test_subset: str = "test-clean", extra_subsets: Sequence[str] = ()
                        ) -> dict[str, list[Utterance]]:
    """Write ``<subset>.jsonl`` for every subset used (and for each of ``extra_subsets``,
    e.g. ``test-other``), and ``train.jsonl`` (the training subsets together),
    ``dev.jsonl`` and ``test.jsonl``, under ``out_dir``.

    ``corpus_dir`` is the ``LibriSpeech`` folder (holding the subset folders) or its parent.
    Audio paths in the manifests are absolute.
    """
    root = Path(corpus_dir)
    if not (root / train_subsets[0]).is_dir() and (root / "LibriSpeech").is_dir():
        root = root / "LibriSpeech"
    for s in (*train_subsets, dev_subset, test_subset, *extra_subsets):
        if s not in LIBRISPEECH_SUBSETS:
            raise PrepareError(f"unknown LibriSpeech subset {s!r}; expected one of {', '.join(LIBRISPEECH_SUBSETS)}")
    out_dir = Path(out_dir)
    by_subset = {}
    for s in dict.fromkeys((*train_subsets, dev_subset, test_subset, *extra_subsets)):
        by_subset[s] = read_librispeech_subset(root / s)
        write_manifest(out_dir / f"{s}.jsonl", by_subset[s], relative=False)
        log.info("%s: %d utterances, %.1f h", s, len(by_subset[s]), sum(u.duration for u in by_subset[s]) / 3600)
    result = {"train": [u for s in train_subsets for u in by_subset[s]],
              "dev": by_subset[dev_subset], "test": by_subset[test_subset]}
    for split, utts in result.items():
        write_manifest(out_dir / f"{split}.jsonl", utts, relative=False)
    return result


LIBRISPEECH_URL = "https://www.openslr.org/resources/12/{subset}.tar.gz"
#: sha256 of the OpenSLR 12 archives (as torchaudio's LIBRISPEECH dataset pins them).
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}


#: MD5 as OpenSLR publishes them (https://www.openslr.org/resources/12/md5sum.txt), checked
#: beside the sha256: a pinned value mistyped here cannot pass both.
LIBRISPEECH_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}


def download_librispeech(dest_dir: str | os.PathLike, subsets: Sequence[str],
                         url: str = LIBRISPEECH_URL) -> Path:
    """Download, verify (pinned sha256 and OpenSLR's MD5) and unpack LibriSpeech subsets; return ``dest_dir/LibriSpeech``.
    Archives are deleted once unpacked."""
    from asr.download import download, extract

    dest_dir = Path(dest_dir)
    for subset in subsets:
        if subset not in LIBRISPEECH_SHA256:
            raise PrepareError(f"unknown LibriSpeech subset {subset!r}; expected one of {', '.join(LIBRISPEECH_SUBSETS)}")
        if (dest_dir / f".{subset}.tar.gz.extracted").exists():
            continue
        archive = download(url.format(subset=subset), dest_dir / f"{subset}.tar.gz", sha256=LIBRISPEECH_SHA256[subset],
                           md5=LIBRISPEECH_MD5[subset])
        extract(archive, dest_dir)
        archive.unlink()
    return dest_dir / "LibriSpeech"


SPEECHOCEAN762_URL = "https://www.openslr.org/resources/101/speechocean762.tar.gz"
#: OpenSLR publishes no checksum for SLR101, so the download is verified by content:
#: sha256 over the sorted, whitespace-normalised lines of ``train/text`` and of
#: ``train/utt2spk`` (2,500 utterances, 125 speakers), and the test split's size.
SPEECHOCEAN762_TEXT_DIGESTS = {
    "train/text": "cd22a4293b268333ab835ba42b4f1f78277a89e9765e495c3ca26f0e017b37f3",
    "train/utt2spk": "e83546f91fa7444547b8c690ef004ad514eee1f7066d38ec87f7a6c847c84737",
}


def table_digest(path: str | os.PathLike) -> str:
    """sha256 of a text table's non-blank lines, whitespace-normalised and sorted."""
    import hashlib

    lines = sorted(" ".join(line.split()) + "\n" for line in text_lines(path, "table") if line.strip())
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def download_speechocean762(dest_dir: str | os.PathLike, url: str = SPEECHOCEAN762_URL,
                            sha256: str | None = None) -> Path:
    """Download and unpack speechocean762 (OpenSLR 101); verify it; return the corpus folder."""
    from asr.download import download, extract

    dest_dir = Path(dest_dir)
    corpus = dest_dir / "speechocean762"
    if not (dest_dir / ".speechocean762.verified").exists():
        archive = download(url, dest_dir / "speechocean762.tar.gz", sha256=sha256)
        extract(archive, dest_dir)
        for name, digest in SPEECHOCEAN762_TEXT_DIGESTS.items():
            if not (corpus / name).is_file() or table_digest(corpus / name) != digest:
                raise PrepareError(f"{archive}: {name} does not match speechocean762 as published; "
                                   f"delete {dest_dir} and download again")
        if not (corpus / "test" / "wav.scp").is_file():
            raise PrepareError(f"{archive}: no test/wav.scp inside; delete {dest_dir} and download again")
        with atomic_open(dest_dir / ".speechocean762.verified") as f:
            f.write("ok\n")
    return corpus


# --------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="asr-prepare", description="Prepare corpora as JSON-lines manifests.")
    sub = p.add_subparsers(dest="command", required=True)

    k = sub.add_parser("kaldi", formatter_class=HelpFormatter,
                       help="a Kaldi data directory (wav.scp, text, utt2spk) to one manifest")
    k.add_argument("data_dir", help="folder holding wav.scp and text (and utt2spk or spk2utt)")
    k.add_argument("out", help="manifest to write (JSON lines)")
    k.add_argument("--audio-root", help="folder that relative wav.scp paths start from "
                   "(default: found among the data dir, its parent, its grandparent and the working directory)")
    k.add_argument("--workers", type=int, default=4, help="threads measuring durations")
    k.add_argument("--numbers", choices=NUMBERS, default="auto", help=NUMBERS_HELP)
    k.add_argument("--allow-pipes", action="store_true",
                   help="run wav.scp pipe commands ('sox x.sph -t wav - |'), each named on stderr first, and keep "
                        "their audio in OUT.audio/ (only for data directories you trust; default: refused)")

    lh = sub.add_parser("lhotse", formatter_class=HelpFormatter,
                        help="a lhotse CutSet (or RecordingSet + SupervisionSet) JSON-lines manifest to ours")
    lh.add_argument("manifest", help="cuts.jsonl[.gz], or recordings.jsonl[.gz] with --supervisions")
    lh.add_argument("out", help="manifest to write (JSON lines)")
    lh.add_argument("--supervisions", help="the SupervisionSet that goes with a RecordingSet")

    hf = sub.add_parser("hf", formatter_class=HelpFormatter,
                        help="a local Hugging Face dataset (save_to_disk folder, Parquet files, audiofolder) to ours")
    hf.add_argument("dataset", help="the dataset folder (or a .parquet file)")
    hf.add_argument("out", help="manifest to write (JSON lines); audio held as bytes goes to OUT.audio/")
    hf.add_argument("--text-column", default="text", help="column with the transcript (e.g. sentence)")
    hf.add_argument("--audio-column", default="audio", help="column with the audio")
    hf.add_argument("--speaker-column", help="column naming the speaker, kept as 'speaker'")
    hf.add_argument("--split", help="which split of a dataset with several")

    s = sub.add_parser("split", formatter_class=HelpFormatter, help="split a manifest by speaker into train/dev(/test)")
    s.add_argument("manifest", help="manifest with a \"speaker\" key per line")
    s.add_argument("--train", required=True, help="training manifest to write")
    s.add_argument("--dev", required=True, help="dev manifest to write (held-out speakers)")
    s.add_argument("--test", help="test manifest to write (other held-out speakers)")
    s.add_argument("--dev-speakers", type=float, default=0.1, help="fraction (<1) or number of dev speakers")
    s.add_argument("--test-speakers", type=float, default=0.1, help="fraction (<1) or number of test speakers")
    s.add_argument("--seed", type=int, default=0, help="seed of the speaker shuffle")
    s.add_argument("--folds", type=int, default=0,
                   help="speaker cross-validation: deal the non-test speakers into this many folds (0: off)")
    s.add_argument("--fold", type=int, default=0, help="with --folds: the fold (0-based) that is dev")

    d = sub.add_parser("digits", formatter_class=HelpFormatter,
                       help="connected digits from the Free Spoken Digit Dataset")
    d.add_argument("corpus_dir", help="FSDD folder (holding recordings/); with --download, where to put it")
    d.add_argument("out_dir", help="folder for wav/ and train/dev/test.jsonl")
    d.add_argument("--dev-speakers", default=",".join(FSDD_DEV_SPEAKERS), help="comma-separated")
    d.add_argument("--test-speakers", default=",".join(FSDD_TEST_SPEAKERS), help="comma-separated")
    d.add_argument("--n-train", type=int, default=2000, help="connected-digit training utterances to build")
    d.add_argument("--n-dev", type=int, default=300, help="dev utterances to build")
    d.add_argument("--n-test", type=int, default=500, help="test utterances to build")
    d.add_argument("--seed", type=int, default=0, help="seed of the digit strings, pauses and gains")
    d.add_argument("--trim-prob", type=float, default=0.0, metavar="P",
                   help="cut this share of the training digits tight at 15-30 dB below their peak, as an "
                        "aggressive endpointer would (dev and test are never cut; default 0)")
    d.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also write N eSpeak NG digit strings with random voices to synthetic.jsonl "
                        "(extra training speakers)")
    d.add_argument("--download", action="store_true", help="download FSDD v1.0.10 into corpus_dir first")

    dl = sub.add_parser("download", formatter_class=HelpFormatter, help="download and verify a public corpus")
    dl.add_argument("corpus", choices=["fsdd", "speechocean762", "librispeech"], help="which corpus")
    dl.add_argument("dest_dir", help="folder to download and unpack into")
    dl.add_argument("--subsets", default="train-clean-100,dev-clean,test-clean",
                    help="LibriSpeech subsets, comma-separated")

    ls = sub.add_parser("librispeech", formatter_class=HelpFormatter, help="LibriSpeech subsets to manifests")
    ls.add_argument("corpus_dir", help="the LibriSpeech folder (holding train-clean-100/, dev-clean/, ...)")
    ls.add_argument("out_dir", help="folder for <subset>.jsonl and train/dev/test.jsonl")
    ls.add_argument("--train-subsets", default="train-clean-100", help="comma-separated training subsets")
    ls.add_argument("--dev-subset", default="dev-clean", help="subset used as dev")
    ls.add_argument("--test-subset", default="test-clean", help="subset used as test")
    ls.add_argument("--extra-subsets", default="", help="more subsets to write <subset>.jsonl for (comma-separated)")
    return p


def _csv(arg: str) -> list[str]:
    return [s.strip() for s in arg.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "kaldi":
        from asr.kaldi import read_kaldi_dir

        pipe_dir = Path(args.out).with_suffix(".audio") if args.allow_pipes else None
        utts = read_kaldi_dir(args.data_dir, audio_root=args.audio_root, workers=args.workers, pipe_dir=pipe_dir,
                              vocab=vocab_from_options(numbers=args.numbers))
        write_manifest(args.out, utts, relative=False)
        speakers = len({u.extra.get("speaker") for u in utts})
        print(f"{args.out}: {len(utts)} utterances, {speakers} speakers, "
              f"{sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "lhotse":
        from asr.lhotse import read_cuts, read_recordings_and_supervisions

        utts = (read_recordings_and_supervisions(args.manifest, args.supervisions) if args.supervisions
                else read_cuts(args.manifest))
        write_manifest(args.out, utts, relative=False)
        print(f"{args.out}: {len(utts)} utterances, {len({u.extra.get('speaker') for u in utts})} speakers, "
              f"{sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "hf":
        from asr.hf import read_dataset

        utts = read_dataset(args.dataset, Path(args.out).with_suffix(".audio"), args.text_column, args.audio_column,
                            args.split, args.speaker_column)
        write_manifest(args.out, utts, relative=False)
        print(f"{args.out}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "split":
        if args.test_speakers > 0 and not args.test:
            args.test_speakers = 0
        parts = split_by_speaker(read_manifest(args.manifest), args.dev_speakers, args.test_speakers, args.seed,
                                 args.folds, args.fold)
        for name, path, utts in zip(("train", "dev", "test"), (args.train, args.dev, args.test), parts):
            if path:
                write_manifest(path, utts, relative=False)
                speakers = len({u.extra["speaker"] for u in utts})
                print(f"{name}: {path}: {len(utts)} utterances, {speakers} speakers, "
                      f"{sum(u.duration for u in utts) / 3600:.2f} h")
    elif args.command == "digits":
        if args.synthetic < 0:
            raise PrepareError(f"--synthetic {args.synthetic}: expected a number of utterances >= 0")
        if not 0 <= args.trim_prob <= 1:
            raise PrepareError(f"--trim-prob {args.trim_prob}: expected a probability between 0 and 1")
        corpus = download_fsdd(args.corpus_dir) if args.download else args.corpus_dir
        prepare_digits(corpus, args.out_dir, _csv(args.dev_speakers),
                       _csv(args.test_speakers), args.n_train, args.n_dev, args.n_test, seed=args.seed,
                       trim_prob=args.trim_prob)
        if args.synthetic:
            synthesize_digits(args.out_dir, args.synthetic, seed=args.seed)
    elif args.command == "download":
        if args.corpus == "fsdd":
            corpus = download_fsdd(args.dest_dir)
        elif args.corpus == "speechocean762":
            corpus = download_speechocean762(args.dest_dir)
        else:
            corpus = download_librispeech(args.dest_dir, _csv(args.subsets))
        print(corpus)
    elif args.command == "librispeech":
        result = prepare_librispeech(args.corpus_dir, args.out_dir, _csv(args.train_subsets),
                                     args.dev_subset, args.test_subset, _csv(args.extra_subsets))
        for split, utts in result.items():
            print(f"{split}: {len(utts)} utterances, {sum(u.duration for u in utts) / 3600:.2f} h")
    return 0


def cli() -> None:
    raise SystemExit(run_cli(main))


if __name__ == "__main__":
    cli()
