"""Local Hugging Face datasets (save_to_disk, Parquet, audiofolder) to manifests, offline."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.data import read_manifest
from asr.prepare import main
from asr.utils import run_cli

datasets = pytest.importorskip("datasets")  # the interop extra; make installs it
RATE = 16000


def _clips(d, n=3):
    paths = []
    for i in range(n):
        t = np.arange(int((0.5 + 0.25 * i) * RATE)) / RATE
        paths.append(str(d / f"clip{i}.wav"))
        sf.write(paths[-1], (0.3 * np.sin(2 * np.pi * 300 * (i + 1) * t)).astype(np.float32), RATE)
    return paths


def _dataset(paths, embed: bool):
    """Audio as the Arrow struct the Audio feature stores ({bytes, path}): building rows
    through datasets.Audio would need torchcodec to encode them, reading them does not."""
    audio = [{"path": p, "bytes": open(p, "rb").read() if embed else None} for p in paths]
    struct = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
    return datasets.Dataset.from_dict({"audio": audio, "sentence": [f"clip number {i}" for i in range(len(paths))],
                                       "client": ["a", "b", "a"][:len(paths)]},
                                      features=datasets.Features({"audio": struct,
                                                                  "sentence": datasets.Value("string"),
                                                                  "client": datasets.Value("string")}))


def test_save_to_disk_with_embedded_audio_is_written_out(tmp_path, capsys):
    paths = _clips(tmp_path)
    _dataset(paths, embed=True).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "m.jsonl"
    assert run_cli(main, ["hf", str(tmp_path / "ds"), str(out), "--text-column", "sentence",
                          "--speaker-column", "client"]) == 0
    utts = read_manifest(out)
    assert [u.text for u in utts] == ["clip number 0", "clip number 1", "clip number 2"]
    assert [round(u.duration, 3) for u in utts] == [0.5, 0.75, 1.0]
    assert [u.extra["speaker"] for u in utts] == ["a", "b", "a"]
    assert all(u.audio_filepath.startswith(str(tmp_path / "m.audio")) for u in utts)
    assert open(utts[1].audio_filepath, "rb").read() == open(paths[1], "rb").read()


def test_parquet_with_paths_references_the_files_and_columns_are_checked(tmp_path, capsys):
    paths = _clips(tmp_path)
    (tmp_path / "pq").mkdir()
    _dataset(paths, embed=False).to_parquet(str(tmp_path / "pq" / "train.parquet"))
    out = tmp_path / "m.jsonl"
    assert run_cli(main, ["hf", str(tmp_path / "pq"), str(out), "--text-column", "sentence"]) == 0
    assert [u.audio_filepath for u in read_manifest(out)] == paths
    assert run_cli(main, ["hf", str(tmp_path / "pq"), str(out), "--text-column", "transcript"]) == 2
    err = capsys.readouterr().err
    assert "no column 'transcript'" in err and "sentence" in err and "Traceback" not in err


def test_an_audiofolder_with_a_metadata_file_converts(tmp_path):
    folder = tmp_path / "af"
    folder.mkdir()
    paths = _clips(folder, 2)[:2]
    (folder / "metadata.csv").write_text("file_name,sentence\nclip0.wav,first clip\nclip1.wav,second clip\n")
    out = tmp_path / "m.jsonl"
    assert run_cli(main, ["hf", str(folder), str(out), "--text-column", "sentence"]) == 0
    utts = sorted(read_manifest(out), key=lambda u: u.text)
    assert [(u.text, round(u.duration, 2)) for u in utts] == [("first clip", 0.5), ("second clip", 0.75)]
    assert [u.audio_filepath for u in utts] == paths  # referenced where they are
