"""asr.prepare (FSDD connected digits, LibriSpeech) and asr.download, on generated fixtures."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asr.prepare as prep
from asr.audio import audio_info, load_audio
from asr.data import read_manifest
from asr.download import DownloadError, download, extract, file_digest
from asr.prepare import PrepareError, build_digit_string, prepare_digits, prepare_librispeech
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
            assert 1 <= len(words) <= 7 and set(words) <= set(prep.DIGIT_WORDS)
            duration, rate = audio_info(u.audio_filepath)
            assert rate == 16000 and duration == pytest.approx(u.duration, abs=1e-3)
            assert duration >= 0.2 * len(words)  # every digit's recording is in there
    speakers = {s: {u.extra["speaker"] for u in result[s]} for s in result}
    assert speakers == {"train": {"ann", "bob"}, "dev": {"cat"}, "test": {"dan"}}
    assert (out / "lexicon.txt").read_text().split() == prep.DIGIT_WORDS
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
        assert peak_hz == pytest.approx(DIGIT_HZ[prep.DIGIT_WORDS.index(u.text)], abs=15)


def test_one_held_out_speaker_for_dev_and_test_gets_disjoint_recordings(tmp_path):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob"], per_digit=4)
    splits = prep._split_recordings(prep.find_fsdd_recordings(corpus), ["bob"], ["bob"])
    dev, test = set(splits["dev"]["bob"]), set(splits["test"]["bob"])
    assert dev and test and not dev & test and len(dev | test) == 40
    assert set(splits["train"]) == {"ann"}


def test_digits_errors_are_one_line(tmp_path, capsys):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat"])
    assert run_cli(prep.main, ["digits", str(corpus), str(tmp_path / "o"), "--test-speakers", "zed"]) == 2
    err = capsys.readouterr().err
    assert "zed" in err and "ann, bob, cat" in err and len(err.strip().splitlines()) == 1
    assert run_cli(prep.main, ["digits", str(corpus), str(tmp_path / "o"), "--trim-prob", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "--trim-prob 1.5" in err and "between 0 and 1" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(PrepareError, match="no FSDD recordings"):
        prep.find_fsdd_recordings(tmp_path)
    with pytest.raises(PrepareError, match="at least one training"):
        prepare_digits(corpus, tmp_path / "o", ["ann", "bob"], ["cat"])


def test_synthetic_digit_strings_with_random_voices(tmp_path, capsys):
    corpus = _write_fsdd(tmp_path / "fsdd", ["ann", "bob", "cat"])
    out = tmp_path / "data"
    assert run_cli(prep.main, ["digits", str(corpus), str(out), "--dev-speakers", "bob", "--test-speakers", "cat",
                               "--n-train", "4", "--n-dev", "2", "--n-test", "2", "--synthetic", "3"]) == 0
    utts = read_manifest(out / "synthetic.jsonl")
    assert [u.id for u in utts] == ["synthetic-00000", "synthetic-00001", "synthetic-00002"]
    assert all(set(u.text.split()) <= set(prep.DIGIT_WORDS) and 1 <= len(u.text.split()) <= 7 for u in utts)
    assert all(u.extra["speaker"].startswith(("en-us+", "en+")) for u in utts)
    for u in utts:  # real speech-length audio at 16 kHz
        duration, rate = audio_info(u.audio_filepath)
        assert rate == 16000 and abs(duration - u.duration) < 1e-3
        assert u.duration > 0.2 * len(u.text.split())  # a fast voice (230 words a minute) says a digit in 0.26 s
    assert len(read_manifest(out / "train.jsonl")) == 4  # the real training set is unchanged
    assert run_cli(prep.main, ["digits", str(corpus), str(tmp_path / "o"), "--synthetic", "-1"]) == 2
    assert "--synthetic -1" in capsys.readouterr().err


def _fsdd_archive(tmp_path: Path) -> tuple[Path, str]:
    src = _write_fsdd(tmp_path / "src" / "free-spoken-digit-dataset-1.0.10", prep.FSDD_SPEAKERS, per_digit=1)
    archive = tmp_path / "fsdd.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname=src.name)
    return archive, prep.fsdd_digest(src / "recordings")


def test_download_fsdd_verifies_the_recordings(tmp_path, monkeypatch):
    archive, digest = _fsdd_archive(tmp_path)
    # The real digest: the fake corpus is refused.
    with pytest.raises(PrepareError, match="do not match FSDD"):
        prep.download_fsdd(tmp_path / "bad", url=archive.as_uri())
    monkeypatch.setattr(prep, "FSDD_PER_SPEAKER", 10)
    monkeypatch.setattr(prep, "FSDD_DIGEST", digest)
    corpus = prep.download_fsdd(tmp_path / "good", url=archive.as_uri())
    assert len(prep.find_fsdd_recordings(corpus)) == 6
    assert (tmp_path / "good" / ".fsdd.verified").exists()
    archive.unlink()  # verified once: no second download
    assert prep.download_fsdd(tmp_path / "good", url=archive.as_uri()) == corpus
    (corpus / "recordings" / "3_george_0.wav").write_bytes(b"tampered")
    assert prep.fsdd_digest(corpus / "recordings") != digest


# --------------------------------------------------------------------------- LibriSpeech


def _write_librispeech(root: Path) -> dict[str, list[tuple[str, float, str]]]:
    """LibriSpeech/<subset>/<speaker>/<chapter>/<spk>-<ch>-<n>.flac + <spk>-<ch>.trans.txt."""
    layout = {"train-clean-100": [("19", "198"), ("26", "495")], "train-clean-360": [("100", "121669")],
              "dev-clean": [("84", "121123")], "test-clean": [("61", "70968")]}
    written = {}
    rng = np.random.default_rng(0)
    for subset, chapters in layout.items():
        written[subset] = []
        for spk, ch in chapters:
            folder = root / "LibriSpeech" / subset / spk / ch
            folder.mkdir(parents=True)
            lines = []
            for n in range(3):
                uid = f"{spk}-{ch}-{n:04d}"
                seconds = float(rng.uniform(0.3, 1.5))
                sf.write(folder / f"{uid}.flac", rng.normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000)
                text = f"HE HOPED THERE WOULD BE STEW FOR DINNER'S SAKE {n}"
                lines.append(f"{uid} {text}\n")
                written[subset].append((uid, round(int(16000 * seconds) / 16000, 4), text))
            (folder / f"{spk}-{ch}.trans.txt").write_text("".join(lines))
    return written


def test_prepare_librispeech_on_a_fake_corpus(tmp_path):
    written = _write_librispeech(tmp_path / "corpus")
    out = tmp_path / "data"
    result = prepare_librispeech(tmp_path / "corpus", out, ["train-clean-100", "train-clean-360"])
    for subset in written:
        utts = read_manifest(out / f"{subset}.jsonl")
        assert sorted((u.id, round(u.duration, 4)) for u in utts) == sorted((w[0], w[1]) for w in written[subset])
    train = read_manifest(out / "train.jsonl")
    assert len(train) == len(result["train"]) == 9
    assert {u.extra["speaker"] for u in train} == {"19", "26", "100"}
    assert train[0].text == "he hoped there would be stew for dinner's sake zero"  # digits spelled out in words
    assert [u.id for u in read_manifest(out / "dev.jsonl")] == [w[0] for w in written["dev-clean"]]
    assert [u.id for u in read_manifest(out / "test.jsonl")] == [w[0] for w in written["test-clean"]]
    assert all(Path(u.audio_filepath).is_absolute() for u in train)


def test_prepare_librispeech_cli_and_errors(tmp_path, capsys):
    _write_librispeech(tmp_path / "corpus")
    ls = tmp_path / "corpus" / "LibriSpeech"
    assert run_cli(prep.main, ["librispeech", str(ls), str(tmp_path / "d")]) == 0
    assert "train: 6 utterances" in capsys.readouterr().out
    assert run_cli(prep.main, ["librispeech", str(ls), str(tmp_path / "d"), "--train-subsets", "train-other-500"]) == 2
    assert "train-other-500" in capsys.readouterr().err
    assert run_cli(prep.main, ["librispeech", str(ls), str(tmp_path / "d"), "--dev-subset", "dev-cleen"]) == 2
    assert "unknown LibriSpeech subset 'dev-cleen'" in capsys.readouterr().err
    next(ls.glob("dev-clean/*/*/*.flac")).unlink()
    with pytest.raises(PrepareError, match="not found beside the transcript"):
        prepare_librispeech(ls, tmp_path / "d")


# --------------------------------------------------------------------------- downloads


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``payload`` with Range support; counts the bytes it sent."""

    payload = b""
    sent: list[int]
    cut_after: int | None = None  # drop the connection after this many bytes (once)

    def do_GET(self):
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
        else:
            self.send_response(200)
        body = self.payload[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).cut_after
        if cut is not None:
            type(self).cut_after = None
            body = body[:cut]
        self.sent.append(len(body))  # before the write: the client may check it as soon as it has the bytes
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.payload = bytes(range(256)) * 4096  # 1 MiB
    _RangeHandler.sent = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/file.bin"
    httpd.shutdown()


def test_download_verifies_and_resumes(server, tmp_path):
    payload = _RangeHandler.payload
    sha = hashlib.sha256(payload).hexdigest()
    _RangeHandler.cut_after = 300_000
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="run again to resume"):
        download(server, dest, sha256=sha, progress=False)
    assert not dest.exists() and (tmp_path / "f.bin.part").stat().st_size == 300_000
    assert download(server, dest, sha256=sha, progress=False) == dest
    assert dest.read_bytes() == payload and not (tmp_path / "f.bin.part").exists()
    assert _RangeHandler.sent == [300_000, len(payload) - 300_000]  # the second request resumed
    download(server, dest, sha256=sha, progress=False)  # already there: nothing fetched
    assert len(_RangeHandler.sent) == 2


def test_download_checksum_mismatch_deletes_the_file(server, tmp_path):
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="expected 0000"):
        download(server, dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
    md5 = hashlib.md5(_RangeHandler.payload).hexdigest()
    sha = hashlib.sha256(_RangeHandler.payload).hexdigest()
    with pytest.raises(DownloadError, match=f"its md5 is {md5}, expected 1111"):  # both given: both must match
        download(server, dest, sha256=sha, md5="1" * 32, progress=False)
    assert not dest.exists() and not (tmp_path / "f.bin.part").exists()
    assert download(server, dest, sha256=sha, md5=md5, progress=False).read_bytes() == _RangeHandler.payload
    with pytest.raises(DownloadError, match="exists but"):
        download(server, dest, sha256="0" * 64, progress=False)


def test_download_file_url_and_unreachable(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello" * 1000)
    dest = download(src.as_uri(), tmp_path / "out" / "dst.bin", sha256=file_digest(src), progress=False)
    assert dest.read_bytes() == src.read_bytes()
    with pytest.raises(DownloadError, match="cannot connect|HTTP"):
        download((tmp_path / "missing.bin").as_uri(), tmp_path / "m.bin", progress=False)


def test_extract_refuses_members_outside_the_folder(tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as t:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DownloadError, match="outside"):
        extract(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as t:
        info = tarfile.TarInfo("a/b.txt")
        info.size = 2
        t.addfile(info, io.BytesIO(b"ok"))
    extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "b.txt").read_text() == "ok"
    (tmp_path / "out" / "a" / "b.txt").unlink()
    extract(good, tmp_path / "out")  # marked as done: not unpacked again
    assert not (tmp_path / "out" / "a" / "b.txt").exists()
    (tmp_path / "junk.tar").write_bytes(b"junk")
    with pytest.raises(DownloadError, match="not a tar or zip"):
        extract(tmp_path / "junk.tar", tmp_path / "out2")


def _tar(path, *members):
    with tarfile.open(path, "w") as t:
        for info in members:
            t.addfile(info, io.BytesIO(b"ok") if info.isfile() else None)
    return path


def _member(name, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = 2 if kind == tarfile.REGTYPE else 0
    return info


def test_extract_resolves_links_as_tar_does_and_refuses_special_files(tmp_path):
    # A hard link's target is relative to the archive root: "a/b/data.txt" -> a/b/data.txt
    # (inside), while "../../x" from a member two folders deep escapes only if read as root-relative.
    ok = _tar(tmp_path / "ok.tar", _member("a/b/data.txt"), _member("a/b/hard", tarfile.LNKTYPE, "a/b/data.txt"),
              _member("a/b/soft", tarfile.SYMTYPE, "data.txt"))
    extract(ok, tmp_path / "ok")
    assert (tmp_path / "ok" / "a" / "b" / "hard").read_text() == "ok"
    assert (tmp_path / "ok" / "a" / "b" / "soft").read_text() == "ok"
    # Root-relative "../outside.txt" leaves the folder, though from a/b/ it would not.
    escape = _tar(tmp_path / "escape.tar", _member("a/b/c.txt"), _member("a/b/hard", tarfile.LNKTYPE, "../outside"))
    with pytest.raises(DownloadError, match="'a/b/hard' would be written outside"):
        extract(escape, tmp_path / "escape")
    for kind in (tarfile.FIFOTYPE, tarfile.CHRTYPE):
        special = _tar(tmp_path / f"special{kind}.tar", _member("dev/thing", kind))
        with pytest.raises(DownloadError, match="'dev/thing' is a device or pipe"):
            extract(special, tmp_path / f"special{kind}")


def test_download_librispeech_verifies_unpacks_and_prepares(tmp_path, monkeypatch):
    _write_librispeech(tmp_path / "src")
    archive = tmp_path / "archives" / "dev-clean.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "src" / "LibriSpeech" / "dev-clean", arcname="LibriSpeech/dev-clean")
    url = (tmp_path / "archives").as_uri() + "/{subset}.tar.gz"
    monkeypatch.setitem(prep.LIBRISPEECH_SHA256, "dev-clean", "0" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        prep.download_librispeech(tmp_path / "dl", ["dev-clean"], url=url)
    monkeypatch.setitem(prep.LIBRISPEECH_SHA256, "dev-clean", file_digest(archive))
    with pytest.raises(DownloadError, match="its md5 is .*, expected 42e2234b"):  # OpenSLR's MD5 cross-checks it
        prep.download_librispeech(tmp_path / "dl", ["dev-clean"], url=url)
    monkeypatch.setitem(prep.LIBRISPEECH_MD5, "dev-clean", file_digest(archive, "md5"))
    root = prep.download_librispeech(tmp_path / "dl", ["dev-clean"], url=url)
    assert not (tmp_path / "dl" / "dev-clean.tar.gz").exists()  # unpacked, then deleted
    assert len(prep.read_librispeech_subset(root / "dev-clean")) == 3
    with pytest.raises(PrepareError, match="unknown LibriSpeech subset"):
        prep.download_librispeech(tmp_path / "dl", ["train-clean-50"], url=url)


def test_download_speechocean762_checks_the_transcripts(tmp_path):
    src = tmp_path / "speechocean762"
    for split in ("train", "test"):
        (src / split).mkdir(parents=True)
        (src / split / "text").write_text("000010011\tWE CALL IT BEAR\n")
        (src / split / "utt2spk").write_text("000010011 0001\n")
        (src / split / "wav.scp").write_text("000010011\tWAVE/SPEAKER0001/000010011.WAV\n")
    archive = tmp_path / "so.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(src, arcname="speechocean762")
    with pytest.raises(PrepareError, match="train/text does not match"):
        prep.download_speechocean762(tmp_path / "dl", url=archive.as_uri())
    assert prep.table_digest(src / "train" / "text") == prep.table_digest(src / "test" / "text")
