"""asr.corpora.fsdd and ``asr-prepare digits``: FSDD connected digits, on generated fixtures."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import audio_info, load_audio
from asr.corpora import fsdd
from asr.corpora.common import PrepareError
from asr.corpora.fsdd import build_digit_string, prepare_digits
from asr.data import read_manifest
from asr.prepare import main
from asr.utils import run_cli

DIGIT_HZ = [200 + 100 * d for d in range(10)]


def _write_fsdd(root: Path, speakers, per_digit: int = 2, rate: int = 8000) -> Path:
    """FSDD layout: recordings/{digit}_{speaker}_{index}.wav, a tone per digit, 8 kHz."""
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for s, spk in enumerate(speakers):
        for d in range(10):
            for i in range(per_digit):
                n = int(rate * (0.2 + 0.02 * i + 0.01 * s))
                t = np.arange(n) / rate
                sf.write(rec / f"{d}_{spk}_{i}.wav", (0.5 * np.sin(2 * np.pi * DIGIT_HZ[d] * t)).astype(np.float32),
                         rate, subtype="PCM_16")
    return root


def test_build_digit_string_pads_scales_and_keeps_peaks_below_one():
    rng = np.random.default_rng(0)
    clips = [np.full(1600, 0.9, np.float32), np.full(800, -0.9, np.float32)]
    wave = build_digit_string(clips, rng, 16000, pause=(0.1, 0.1), edge=(0.05, 0.05), gain_db=(6.0, 6.0))
    assert len(wave) == 2400 + 1600 + 2 * 800  # clips + one pause + two edges
    assert np.abs(wave).max() <= 0.99 + 1e-6
    assert np.abs(wave[:800]).max() < 0.01  # leading silence is only the noise floor
    assert wave[800:2400].mean() > 0.5 and wave[4000:4800].mean() < -0.3


def test_trimming_cuts_a_weak_onset_and_coda_but_keeps_the_loud_core():
    t = np.arange(4000) / 16000
    core = (0.5 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    weak = np.random.default_rng(1).normal(0, 0.01, 1600).astype(np.float32)  # -34 dB: a fricative
    clip = np.concatenate([weak, core, weak])
    kw = dict(pause=(0.0, 0.0), edge=(0.0, 0.0), gain_db=(0.0, 0.0), floor_db=(-200.0, -200.0))
    kept = build_digit_string([clip], np.random.default_rng(0), 16000, **kw)
    assert len(kept) == len(clip)  # trim_prob 0: untouched
    cut = build_digit_string([clip], np.random.default_rng(0), 16000, trim_prob=1.0, trim_db=(20.0, 20.0), **kw)
    assert len(core) <= len(cut) < len(core) + 800  # the core stays, at most a frame of each edge
    assert np.abs(cut).max() == pytest.approx(0.5, abs=0.01)


def test_prepare_digits_trims_training_digits_only(tmp_path):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat"])
    rec = corpus / "recordings"
    for f in rec.glob("*.wav"):  # give every recording a weak 0.1 s onset
        x, rate = sf.read(f, dtype="float32")
        sf.write(f, np.concatenate([np.full(800, 0.005, np.float32), x]), rate, subtype="PCM_16")
    plain = prepare_digits(corpus, tmp_path / "plain", ["bob"], ["cat"], 12, 6, 6, seed=1)
    cut = prepare_digits(corpus, tmp_path / "cut", ["bob"], ["cat"], 12, 6, 6, seed=1, trim_prob=1.0)
    for split in ("dev", "test"):
        assert [u.duration for u in cut[split]] == [u.duration for u in plain[split]]
    words = sum(len(u.text.split()) for u in cut["train"])
    shorter = sum(u.duration for u in plain["train"]) - sum(u.duration for u in cut["train"])
    assert shorter > 0.05 * words  # the 0.1 s onsets went (pauses are random, so not exactly)


def test_prepare_digits_splits_by_speaker_and_resamples(tmp_path):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat", "dan"])
    out = tmp_path / "data"
    result = prepare_digits(corpus, out, dev_speakers=["cat"], test_speakers=["dan"], n_train=20, n_dev=6,
                            n_test=8, seed=3)
    for split, n in (("train", 20), ("dev", 6), ("test", 8)):
        utts = read_manifest(out / f"{split}.jsonl")
        assert len(utts) == n == len(result[split])
        for u in utts:
            words = u.text.split()
            assert 1 <= len(words) <= 7 and set(words) <= set(fsdd.DIGIT_WORDS)
            duration, rate = audio_info(u.audio_filepath)
            assert rate == 16000 and duration == pytest.approx(u.duration, abs=1e-3)
            assert duration >= 0.2 * len(words)  # every digit's recording is in there
    speakers = {s: {u.extra["speaker"] for u in result[s]} for s in result}
    assert speakers == {"train": {"ann", "bob"}, "dev": {"cat"}, "test": {"dan"}}
    assert (out / "lexicon.txt").read_text().split() == fsdd.DIGIT_WORDS
    # Same seed, same corpus: the same utterances.
    again = prepare_digits(corpus, tmp_path / "again", ["cat"], ["dan"], 20, 6, 8, seed=3)
    assert [u.text for u in again["train"]] == [u.text for u in result["train"]]


def test_digit_audio_matches_its_transcript(tmp_path):
    """A one-digit utterance's strongest frequency is that digit's tone."""
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat"])
    result = prepare_digits(corpus, tmp_path / "data", ["bob"], ["cat"], n_train=40, n_dev=2, n_test=2, seed=0)
    singles = [u for u in result["train"] if len(u.text.split()) == 1]
    assert singles
    for u in singles:
        wave = load_audio(u.audio_filepath).numpy()
        peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
        assert peak_hz == pytest.approx(DIGIT_HZ[fsdd.DIGIT_WORDS.index(u.text)], abs=15)


def test_one_held_out_speaker_for_dev_and_test_gets_disjoint_recordings(tmp_path):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob"], per_digit=4)
    splits = fsdd._split_recordings(fsdd.find_fsdd_recordings(corpus), ["bob"], ["bob"])
    dev, test = set(splits["dev"]["bob"]), set(splits["test"]["bob"])
    assert dev and test and not dev & test and len(dev | test) == 40
    assert set(splits["train"]) == {"ann"}


def test_digits_errors_are_one_line(tmp_path, capsys):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat"])
    assert run_cli(main, ["digits", str(corpus), str(tmp_path / "o"), "--test-speakers", "zed"]) == 2
    err = capsys.readouterr().err
    assert "zed" in err and "ann, bob, cat" in err and len(err.strip().splitlines()) == 1
    assert run_cli(main, ["digits", str(corpus), str(tmp_path / "o"), "--trim-prob", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--trim-prob 1.5" in err and "between 0 and 1" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(PrepareError, match="no FSDD recordings"):
        fsdd.find_fsdd_recordings(tmp_path)
    with pytest.raises(PrepareError, match="at least one training"):
        prepare_digits(corpus, tmp_path / "o", ["ann", "bob"], ["cat"])


def test_synthetic_digit_strings_with_random_voices(tmp_path, capsys):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat"])
    out = tmp_path / "data"
    assert run_cli(main, ["digits", str(corpus), str(out), "--dev-speakers", "bob", "--test-speakers", "cat",
                               "--n-train", "4", "--n-dev", "2", "--n-test", "2", "--synthetic", "3"]) == 0
    utts = read_manifest(out / "synthetic.jsonl")
    assert [u.id for u in utts] == ["synthetic-00000", "synthetic-00001", "synthetic-00002"]
    assert all(set(u.text.split()) <= set(fsdd.DIGIT_WORDS) and 1 <= len(u.text.split()) <= 7 for u in utts)
    assert all(u.extra["speaker"].startswith(("en-us+", "en+")) for u in utts)
    for u in utts:  # real speech-length audio at 16 kHz
        duration, rate = audio_info(u.audio_filepath)
        assert rate == 16000 and abs(duration - u.duration) < 1e-3
        assert u.duration > 0.2 * len(u.text.split())  # a fast voice (230 words a minute) says a digit in 0.26 s
    assert len(read_manifest(out / "train.jsonl")) == 4  # the real training set is unchanged
    assert run_cli(main, ["digits", str(corpus), str(tmp_path / "o"), "--synthetic", "-1"]) == 2
    assert "--synthetic -1" in capsys.readouterr().err


def _fsdd_archive(tmp_path: Path) -> tuple[Path, str]:
    src = _write_fsdd(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", fsdd.FSDD_SPEAKERS, per_digit=1)
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname=src.name)
    return archive, fsdd.fsdd_digest(src / "recordings")


def test_download_fsdd_verifies_the_recordings(tmp_path, monkeypatch):
    archive, digest = _fsdd_archive(tmp_path)
    # The real digest: the fake corpus is refused.
    with pytest.raises(PrepareError, match="do not match FSDD"):
        fsdd.download_fsdd(tmp_path / "bad", url=archive.as_uri())
    monkeypatch.setattr(fsdd, "FSDD_PER_SPEAKER", 10)
    monkeypatch.setattr(fsdd, "FSDD_DIGEST", digest)
    corpus = fsdd.download_fsdd(tmp_path / "good", url=archive.as_uri())
    assert len(fsdd.find_fsdd_recordings(corpus)) == 6
    assert (tmp_path / "good" / ".fsdd.verified").exists()
    archive.unlink()  # verified once: no second download
    assert fsdd.download_fsdd(tmp_path / "good", url=archive.as_uri()) == corpus
    (corpus / "recordings" / "3_george_0.wav").write_bytes(b"tampered")
    assert fsdd.fsdd_digest(corpus / "recordings") != digest
