"""Every kind of broken input in one asr-transcribe run: one error line each, the good file
transcribed, a non-zero exit status, no traceback."""

import struct

import numpy as np
import pytest
import soundfile as sf

from asr import audio
from asr.transcribe import main
from asr.utils import run_cli

SR = 16000


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


def _hostile(d):
    rng = np.random.default_rng(0)
    good = d / "good.wav"
    sf.write(good, rng.normal(0, 0.1, SR).astype(np.float32), SR, subtype="PCM_16")
    bad = {}
    bad["missing"] = d / "missing.wav"
    (d / "no_audio_dir").mkdir()
    (d / "no_audio_dir" / "readme.txt").write_text("nothing here")
    bad["dir"] = d / "no_audio_dir"
    bad["empty"] = d / "empty.wav"
    bad["empty"].write_bytes(b"")
    bad["truncated"] = d / "truncated.wav"
    bad["truncated"].write_bytes(good.read_bytes()[:30])
    bad["random"] = d / "random.wav"
    bad["random"].write_bytes(rng.bytes(20000))
    bad["text"] = d / "notes.txt"
    bad["text"].write_text("this is not audio\n" * 50)
    bad["zero"] = d / "zero.wav"
    sf.write(bad["zero"], np.zeros(0, np.float32), SR)
    bad["nan"] = d / "nan.wav"
    sf.write(bad["nan"], np.where(np.arange(SR) == 9000, np.nan, 0.1).astype(np.float32), SR, subtype="FLOAT")
    bad["inf"] = d / "inf.flac.wav"
    sf.write(bad["inf"], np.where(np.arange(SR) == 100, np.inf, 0.1).astype(np.float32), SR, subtype="FLOAT")
    bad["rate1"] = d / "rate1.wav"
    sf.write(bad["rate1"], rng.normal(0, 0.1, 500).astype(np.float32), 1, subtype="PCM_16")
    # far larger than memory allows: 4 s of 8-channel 48 kHz audio against a mocked 8 MiB
    # of memory; its header also claims 4 GiB of data, which libsndfile clamps to the file.
    bad["huge"] = d / "huge.wav"
    sf.write(bad["huge"], rng.normal(0, 0.1, (48000 * 4, 8)).astype(np.float32), 48000, subtype="FLOAT")
    raw = bytearray(bad["huge"].read_bytes())
    i = raw.find(b"data")
    raw[i + 4:i + 8] = struct.pack("<I", 0xFFFFFFF0)
    bad["huge"].write_bytes(bytes(raw))
    return good, bad


def test_every_hostile_input_gets_one_error_line(ckpt, tmp_path, capsys, monkeypatch):
    good, bad = _hostile(tmp_path)
    monkeypatch.setattr(audio, "_memory_bytes", lambda: 8 * 2**20)
    args = [str(p) for p in bad.values()]
    args.insert(5, str(good))
    rc = run_cli(main, [*args, "--model", str(ckpt)])
    out, err = capsys.readouterr()
    assert rc != 0
    assert "Traceback" not in err
    lines = err.splitlines()
    assert all(line.startswith("error: ") for line in lines)
    assert len(lines) == len(bad)
    for key, path in bad.items():
        hits = [line for line in lines if f"{path}:" in line]
        assert len(hits) == 1, (key, lines)
    expected = {"missing": "no such file", "dir": "no audio files", "empty": "empty file",
                "truncated": "not readable as audio", "random": "not readable as audio",
                "text": "not readable as audio", "zero": "no samples", "nan": "NaN or infinite",
                "inf": "NaN or infinite", "rate1": "not plausible", "huge": "of memory may be used"}
    for key, words in expected.items():
        assert words in next(line for line in lines if f"{bad[key]}:" in line), key
    # errors appear in input order and the good file is transcribed
    order = [next(i for i, line in enumerate(lines) if f"{p}:" in line) for p in bad.values()]
    assert order == sorted(order)
    (line,) = out.splitlines()
    assert line.startswith(f"{good}\t")


def test_bad_model_and_bad_manifest_are_one_line(ckpt, tmp_path, capsys):
    good, _ = _hostile(tmp_path)
    assert run_cli(main, [str(good), "--model", str(tmp_path / "nope.pt")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("{not json\n")
    assert run_cli(main, [str(manifest), str(good), "--model", str(ckpt)]) == 1
    out, err = capsys.readouterr()
    assert err.startswith(f"error: {manifest}:1: not valid JSON") and err.count("\n") == 1
    assert out.startswith(f"{good}\t")
