"""asr.corpora.librispeech and ``asr-prepare librispeech``, on a generated fake corpus."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.corpora import librispeech
from asr.corpora.common import PrepareError
from asr.corpora.librispeech import prepare_librispeech
from asr.data import read_manifest
from asr.download import DownloadError, file_digest
from asr.prepare import main
from asr.utils import run_cli


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
    assert run_cli(main, ["librispeech", str(ls), str(tmp_path / "d")]) == 0
    assert "train: 6 utterances" in capsys.readouterr().out
    assert run_cli(main, ["librispeech", str(ls), str(tmp_path / "d"), "--train-subsets", "train-other-500"]) == 2
    assert "train-other-500" in capsys.readouterr().err
    assert run_cli(main, ["librispeech", str(ls), str(tmp_path / "d"), "--dev-subset", "dev-cleen"]) == 2
    assert "unknown LibriSpeech subset 'dev-cleen'" in capsys.readouterr().err
    next(ls.glob("dev-clean/*/*/*.flac")).unlink()
    with pytest.raises(PrepareError, match="not found beside the transcript"):
        prepare_librispeech(ls, tmp_path / "d")


def test_download_librispeech_verifies_unpacks_and_prepares(tmp_path, monkeypatch):
    _write_librispeech(tmp_path / "src")
    archive = tmp_path / "archives" / "dev-clean.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "src" / "LibriSpeech" / "dev-clean", arcname="LibriSpeech/dev-clean")
    url = (tmp_path / "archives").as_uri() + "/{subset}.tar.gz"
    monkeypatch.setitem(librispeech.LIBRISPEECH_SHA256, "dev-clean", "0" * 64)
    with pytest.raises(DownloadError, match="sha256"):
        librispeech.download_librispeech(tmp_path / "dl", ["dev-clean"], url=url)
    monkeypatch.setitem(librispeech.LIBRISPEECH_SHA256, "dev-clean", file_digest(archive))
    with pytest.raises(DownloadError, match="its md5 is .*, expected 42e2234b"):  # OpenSLR's MD5 cross-checks it
        librispeech.download_librispeech(tmp_path / "dl", ["dev-clean"], url=url)
    monkeypatch.setitem(librispeech.LIBRISPEECH_MD5, "dev-clean", file_digest(archive, "md5"))
    root = librispeech.download_librispeech(tmp_path / "dl", ["dev-clean"], url=url)
    assert not (tmp_path / "dl" / "dev-clean.tar.gz").exists()  # unpacked, then deleted
    assert len(librispeech.read_librispeech_subset(root / "dev-clean")) == 3
    with pytest.raises(PrepareError, match="unknown LibriSpeech subset"):
        librispeech.download_librispeech(tmp_path / "dl", ["train-clean-50"], url=url)
