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


# ------------------------------------------------------------------ every command
# Each case: (name, build(tmp_path, ckpt) -> (command main, argv), expected exit status,
# a phrase the one error or warning line must hold). Add a case for every hostile input found.
def _wav(path, seconds=1.0):
    sf.write(path, np.random.default_rng(0).normal(0, 0.1, int(SR * seconds)).astype(np.float32), SR,
             subtype="PCM_16")
    return path


def _manifest(d, name="m.jsonl", encoding="utf-8"):
    import json

    _wav(d / "a.wav")
    path = d / name
    path.write_text(json.dumps({"audio_filepath": "a.wav", "duration": 1.0, "text": "hello"}) + "\n",
                    encoding=encoding)
    return path


def _euro_manifest(d):
    import json

    _wav(d / "a.wav")
    path = d / "euro.jsonl"
    rows = [{"audio_filepath": "a.wav", "duration": 1.0, "text": t} for t in ("costs €5", "€ #")]
    path.write_text("".join(json.dumps({**r, "id": f"u{i}"}) + "\n" for i, r in enumerate(rows)))
    return path


def _unreadable_manifest(d):
    import json

    _wav(d / "a.wav")
    (d / "rand.wav").write_bytes(np.random.default_rng(1).bytes(5000))
    rows = [{"audio_filepath": f, "duration": 1.0, "text": "hello"} for f in ("a.wav", "rand.wav", "a.wav")]
    path = d / "some_bad.jsonl"
    path.write_text("".join(json.dumps({**r, "id": f"u{i}"}) + "\n" for i, r in enumerate(rows)))
    return path


def _kaldi_latin1(d):
    (d / "kd").mkdir()
    (d / "kd" / "wav.scp").write_text(f"u1 {_wav(d / 'a.wav')}\n")
    (d / "kd" / "text").write_bytes("u1 café\n".encode("latin-1"))
    (d / "kd" / "utt2spk").write_text("u1 s1\n")
    return d / "kd"


def _truncated(d):
    data = _wav(d / "full.wav").read_bytes()
    (d / "cut.wav").write_bytes(data[:len(data) // 2])
    return d / "cut.wav"


def _binary(d):
    (d / "bin.txt").write_bytes(bytes(range(256)) * 8)
    return d / "bin.txt"


def _below_file(d, name):
    (d / "file").write_text("x")
    return d / "file" / name


from asr import evaluation as _evaluate, lm as _lm, prepare as _prepare, transcribe as _transcribe  # noqa: E402

COMMAND_CASES = [
    ("evaluate --report below a regular file: refused before the evaluation",
     lambda d, m: (_evaluate.main, ["--model", m, "--manifest", _manifest(d), "--report", _below_file(d, "r.json")]),
     2, "file is a regular file, not a folder"),
    ("evaluate a manifest with a UTF-8 byte-order mark",
     lambda d, m: (_evaluate.main, ["--model", m, "--manifest", _manifest(d, encoding="utf-8-sig")]), 0, None),
    ("evaluate references with characters outside the vocabulary: counted, and an empty reference named",
     lambda d, m: (_evaluate.main, ["--model", m, "--manifest", _euro_manifest(d)]), 0,
     "characters outside the vocabulary were dropped: '€' x2, '#' x1"),
    ("evaluate a manifest with an unreadable audio file: stopped before any work, naming manifest:line",
     lambda d, m: (_evaluate.main, ["--model", m, "--manifest", _unreadable_manifest(d)]), 2,
     "some_bad.jsonl:2: "),
    ("evaluate --skip-unreadable scores the rest and says so",
     lambda d, m: (_evaluate.main, ["--model", m, "--manifest", _unreadable_manifest(d), "--skip-unreadable"]), 0,
     "some_bad.jsonl:2: "),
    ("lm build on a binary file", lambda d, m: (_lm.main, ["build", _binary(d), d / "o.arpa"]), 2, "not UTF-8"),
    ("lm build into a path below a regular file",
     lambda d, m: (_lm.main, ["build", _manifest(d), _below_file(d, "o.arpa")]), 2, "not a folder"),
    ("prepare kaldi with a Latin-1 text", lambda d, m: (_prepare.main, ["kaldi", _kaldi_latin1(d), d / "o.jsonl"]),
     2, "kd/text:1: not UTF-8 (byte 0xe9)"),
    ("transcribe with a Latin-1 lexicon",
     lambda d, m: (_transcribe.main, [_wav(d / "a.wav"), "--model", m, "--decoder", "beam", "--lexicon",
                                      _binary(d)]), 2, "not UTF-8"),
    ("transcribe --output-dir below a regular file",
     lambda d, m: (_transcribe.main, [_wav(d / "a.wav"), "--model", m, "--output-dir", _below_file(d, "out")]),
     2, "not a folder"),
    ("transcribe --chunk-seconds 1.5: the overlap fits the pieces",
     lambda d, m: (_transcribe.main, [_wav(d / "long.wav", 5.0), "--model", m, "--chunk-seconds", "1.5",
                                      "--cut-pause", "0"]), 0, None),
    ("transcribe --nbest 3 of a recording decoded in pieces: one hypothesis, and why",
     lambda d, m: (_transcribe.main, [_wav(d / "long.wav", 5.0), "--model", m, "--chunk-seconds", "2",
                                      "--cut-pause", "0", "--decoder", "beam", "--nbest", "3"]), 0,
     "transcribed in 3 pieces, so one hypothesis is given"),
    ("prepare kaldi --numbers keep with a vocabulary without digits: refused before reading",
     lambda d, m: (_prepare.main, ["kaldi", _kaldi_latin1(d), d / "o.jsonl", "--numbers", "keep"]), 2,
     "needs the digits 0-9"),
    ("evaluate --hyp-key --numbers keep with a vocabulary without digits",
     lambda d, m: (_evaluate.main, ["--manifest", _manifest(d), "--hyp-key", "text", "--numbers", "keep"]), 2,
     "needs the digits 0-9"),
    ("transcribe a WAV whose header promises more than the file holds",
     lambda d, m: (_transcribe.main, [_truncated(d), "--model", m]), 0, "truncated WAV file"),
]


@pytest.mark.parametrize("name,build,status,phrase", COMMAND_CASES, ids=[c[0] for c in COMMAND_CASES])
def test_hostile_inputs_to_every_command(name, build, status, phrase, ckpt, tmp_path, capsys):
    main, argv = build(tmp_path, ckpt)
    rc = run_cli(main, [str(a) for a in argv])
    out, err = capsys.readouterr()
    assert rc == status, err
    assert "Traceback" not in err
    lines = err.splitlines()
    if status:
        assert len(lines) == 1 and lines[0].startswith("error: ") and phrase in lines[0], lines
    elif phrase:
        assert any(line.startswith("warning: ") and phrase in line for line in lines), lines
        assert all(line.startswith("warning: ") for line in lines), lines
    else:
        assert not lines, lines
        assert out.strip()  # and the work was done


def test_named_pipes_and_process_substitution_are_read_as_streams(ckpt, tmp_path, capsys):
    import os
    import threading

    good = _wav(tmp_path / "a.wav")
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(good.read_bytes()))
    writer.start()
    rc = run_cli(main, [str(fifo), str(good), "--model", str(ckpt), "--format", "tsv"])
    writer.join()
    out, err = capsys.readouterr()
    assert rc == 0 and "error" not in err, err
    rows = [line.split("\t") for line in out.splitlines() if "\t" in line]
    # the same audio, through the pipe and from the file, gives the same transcript
    by_name = {r[0]: r[-1] for r in rows}
    assert by_name[str(fifo)] == by_name[str(good)], rows


def test_file_names_with_newlines_and_tabs_do_not_break_lines(ckpt, tmp_path, capsys):
    a, b = _wav(tmp_path / "new\nline.wav"), _wav(tmp_path / "tab\there.wav")
    rc = run_cli(main, [str(a), str(b), str(tmp_path / "gone\n.wav"), "--model", str(ckpt), "--format", "tsv"])
    out, err = capsys.readouterr()
    assert rc == 1
    rows = out.splitlines()[1:]
    assert rows and all(len(r.split("\t")) == 5 for r in rows)  # audio, start, end, confidence, word
    assert {r.split("\t")[0] for r in rows} <= {str(tmp_path / "new\\nline.wav"), str(tmp_path / "tab\\there.wav")}
    assert err.splitlines() == [f"error: {tmp_path}/gone\\n.wav: no such file; check the path"]
