"""asr-transcribe and asr.transcribe / asr.align: inputs, formats, word timestamps, long audio."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.align import align_words
from asr.features import FeatureConfig
from asr.synth import Voice, render
from asr.text import Vocabulary
from asr.transcribe import main, transcribe_files

SR = 16000


@pytest.fixture(scope="module")
def ckpt(tiny_checkpoint):
    return tiny_checkpoint


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    d = tmp_path_factory.mktemp("speech")
    paths = []
    for i, text in enumerate(["hello world", "seven eight nine", "good morning"]):
        p = d / f"s{i}.wav"
        sf.write(p, render(text, Voice("en-us"), SR, np.random.default_rng(i)), SR, subtype="PCM_16")
        paths.append(str(p))
    return paths


class BurstRecognizer:
    """A stand-in acoustic model with known output: 'a' on loud steps (30 ms, or
    ``frame_shift``), a space on the first quiet step after them, blank elsewhere."""

    sample_rate, vocab = SR, Vocabulary()
    feature_cfg = FeatureConfig(n_mels=40)

    def __init__(self, frame_shift: float = 0.03):
        self.frame_shift = frame_shift  # 10 ms frames, 3 (birnn) or 2 (ds2) per step

    def __call__(self, waves, lengths):
        step, frames = round(self.frame_shift * SR), round(self.frame_shift * 100)
        steps = (torch.div(lengths, 160, rounding_mode="floor") + frames) // frames
        total = int(steps.max())
        x = torch.nn.functional.pad(waves, (0, max(0, total * step - waves.shape[1])))[:, :total * step]
        loud = x.reshape(len(x), total, step).pow(2).mean(-1).sqrt() > 0.05
        space = ~loud & torch.nn.functional.pad(loud, (1, 0))[:, :-1]
        logits = torch.full((len(x), total, len(self.vocab)), -8.0)
        logits[..., 0] = 0.0
        logits[..., self.vocab.encode("a")[0]] = torch.where(loud, 8.0, -8.0)
        logits[..., self.vocab.id(" ")] = torch.where(space, 8.0, -8.0)
        return logits.log_softmax(-1), steps


def _burst_file(path, starts, length, seconds):
    x = np.random.default_rng(0).normal(0, 1e-3, int(seconds * SR)).astype(np.float32)
    for s in starts:
        i = int(s * SR)
        x[i:i + int(length * SR)] += 0.5 * np.sin(np.arange(int(length * SR)) * 0.3).astype(np.float32)
    sf.write(path, x, SR, subtype="FLOAT")


@pytest.mark.parametrize("gap, frame_shift", [(1.0, 0.03), (0.09, 0.03), (0.09, 0.02)])  # pauses to cut at / none
def test_word_times_in_seconds_across_chunks(tmp_path, gap, frame_shift):
    length = 0.6
    starts = np.arange(0.5, 95.0, length + gap)
    _burst_file(tmp_path / "b.wav", starts, length, 96.0)
    (t,) = transcribe_files(BurstRecognizer(frame_shift), [str(tmp_path / "b.wav")], chunk_seconds=10.0)
    assert [w.word for w in t.words] == ["a"] * len(starts)  # each burst once, no overlap duplicates
    assert t.text == " ".join(["a"] * len(starts)) and t.duration == 96.0
    for w, s in zip(t.words, starts):
        assert abs(w.start - s) < 0.07 and abs(w.end - (s + length)) < 0.07
        assert w.confidence > 0.99


class NoSpaceRecognizer(BurstRecognizer):
    """Never marks a word boundary, as a model trained on single phrases does at a pause
    between sentences it never saw joined."""

    def __call__(self, waves, lengths):
        log_probs, steps = super().__call__(waves, lengths)
        log_probs[..., self.vocab.id(" ")] = -30.0
        return log_probs, steps


def test_long_pauses_end_a_piece_and_so_separate_words(tmp_path):
    _burst_file(tmp_path / "b.wav", [1.0, 1.8, 4.0], 0.6, 6.0)  # 0.2 s then 1.6 s of pause
    (cut,) = transcribe_files(NoSpaceRecognizer(), [str(tmp_path / "b.wav")])
    assert cut.text == "aa a"  # one piece per phrase: only the 1.6 s pause is cut (default 0.3 s)
    assert [round(w.start, 1) for w in cut.words] == [1.0, 4.0]
    (whole,) = transcribe_files(NoSpaceRecognizer(), [str(tmp_path / "b.wav")], cut_pause=None)
    assert whole.text == "aaa"


def test_cli_refuses_a_negative_cut_pause(ckpt, speech, capsys):
    from asr.utils import run_cli

    assert run_cli(main, [speech[0], "--model", str(ckpt), "--cut-pause", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --cut-pause -1.0: expected seconds >= 0") and err.count("\n") == 1


def test_align_words_spans_and_confidence():
    vocab = Vocabulary()
    lp = torch.full((40, len(vocab)), -20.0)
    lp[:, 0] = 0.0
    for frame, ch in [(3, "h"), (4, "i"), (10, " "), (20, "y"), (21, "o"), (22, "u")]:
        lp[frame] = -20.0
        lp[frame, vocab.id(ch)] = np.log(0.6)
        lp[frame, 0] = np.log(0.4)
    words = align_words(lp, vocab.encode("hi you"), vocab, frame_shift=0.03, offset=10.0)
    assert [w.word for w in words] == ["hi", "you"]
    assert words[0].start == pytest.approx(10.09) and words[0].end == pytest.approx(10.15)
    assert words[1].start == pytest.approx(10.6) and words[1].end == pytest.approx(10.69)
    assert all(abs(w.confidence - 0.6) < 1e-3 for w in words)
    assert align_words(lp, [], vocab, 0.03) == []


def test_cli_txt_json_order_and_prefix(ckpt, speech, capsys):
    assert main([speech[0], "--model", str(ckpt)]) == 0
    single = capsys.readouterr().out
    assert single.count("\n") == 1 and "\t" not in single
    assert main([*speech, "--model", str(ckpt), "--format", "json"]) == 0
    recs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["audio"] for r in recs] == speech
    assert all(set(r) >= {"audio", "text", "duration", "words"} for r in recs)
    assert abs(recs[0]["duration"] - sf.info(speech[0]).duration) < 1e-3
    assert main([*speech, "--model", str(ckpt)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == speech
    assert [line.split("\t", 1)[1] for line in lines] == [r["text"] for r in recs]


def test_directory_manifest_output_dir_and_plot(ckpt, speech, tmp_path, capsys):
    d = tmp_path / "in" / "deep"
    d.mkdir(parents=True)
    sf.write(d / "x.flac", sf.read(speech[1])[0], SR)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"audio_filepath": p, "duration": 1.0, "text": ""}) + "\n"
                                for p in speech[:2]))
    out, plots = tmp_path / "out", tmp_path / "plots"
    rc = main([str(tmp_path / "in"), str(manifest), "--model", str(ckpt), "--format", "srt",
               "--output-dir", str(out), "--plot", str(plots)])
    assert rc == 0 and capsys.readouterr().out == ""
    assert sorted(p.name for p in out.rglob("*.srt")) == ["s0.srt", "s1.srt", "x.srt"]
    assert (out / "deep" / "x.srt").exists()
    pngs = sorted(p.name for p in plots.rglob("*.png"))
    assert pngs == ["s0.png", "s1.png", "x.png"]
    assert (plots / "s0.png").read_bytes()[:4] == b"\x89PNG"
    assert not list(out.rglob("*.tmp"))


def test_format_all_writes_every_format_for_every_input(ckpt, speech, tmp_path, capsys):
    from asr.formats import FORMATS
    from asr.utils import run_cli

    out = tmp_path / "all"
    assert run_cli(main, [*speech[:2], "--model", str(ckpt), "--format", "all", "--output-dir", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"s{i}.{fmt}" for i in range(2) for fmt in FORMATS)
    assert run_cli(main, [speech[0], "--model", str(ckpt), "--format", "ctm"]) == 0
    assert capsys.readouterr().out == (out / "s0.ctm").read_text()  # the same writer, to a file or stdout
    assert run_cli(main, [speech[0], "--model", str(ckpt), "--format", "all"]) == 2
    assert "--format all" in capsys.readouterr().err


def test_a_manifest_of_segments_transcribes_each_piece_as_its_own_file(ckpt, speech, tmp_path, capsys):
    waves = [sf.read(p, dtype="float32")[0] for p in speech]
    gap = np.zeros(SR // 2, np.float32)
    sf.write(tmp_path / "joined.wav", np.concatenate([waves[0], gap, waves[1], gap, waves[2]]), SR)
    rows, offset = [], 0.0
    for i, w in enumerate(waves):
        rows.append({"audio_filepath": "joined.wav", "offset": offset, "duration": len(w) / SR, "text": "",
                     "id": f"u{i}"})
        offset += len(w) / SR + 0.5
    manifest = tmp_path / "segments.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main([*speech, "--model", str(ckpt), "--cut-pause", "0"]) == 0
    separate = [line.split("\t")[1] for line in capsys.readouterr().out.splitlines()]
    assert main([str(manifest), "--model", str(ckpt), "--cut-pause", "0"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[1] for line in lines] == separate
    assert lines[1].startswith(f"{tmp_path / 'joined.wav'}:{rows[1]['offset']:.2f}-")


def test_srt_with_several_inputs_needs_output_dir(ckpt, speech, capsys):
    from asr.utils import run_cli

    assert run_cli(main, [*speech, "--model", str(ckpt), "--format", "srt"]) == 2
    assert "--output-dir" in capsys.readouterr().err


def test_stdin_and_formats_via_subprocess(ckpt, speech, tmp_path):
    flac = tmp_path / "in.flac"
    x, rate = sf.read(speech[2])
    sf.write(flac, np.stack([x, x], 1), rate)
    proc = subprocess.run([sys.executable, "-m", "asr.transcribe", "-", "--model", str(ckpt), "--format", "json"],
                          input=flac.read_bytes(), capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()
    rec = json.loads(proc.stdout)
    assert rec["audio"] == "-" and abs(rec["duration"] - len(x) / rate) < 1e-3


def test_long_recording_memory_stays_bounded(ckpt, tmp_path):
    """20 minutes of speech, transcribed in chunks: peak memory must not grow with the length."""
    rng = np.random.default_rng(0)
    pieces = []
    for i, text in enumerate(["the quick brown fox", "jumps over the lazy dog", "one two three four"]):
        pieces += [render(text, Voice("en-us"), SR, rng), np.zeros(int(SR * 0.4), np.float32)]
    unit = np.concatenate(pieces)
    total = 20 * 60 * SR
    x = np.tile(unit, total // len(unit) + 1)[:total]
    x = x + rng.normal(0, 1e-3, total).astype(np.float32)
    sf.write(tmp_path / "long.wav", x, SR, subtype="PCM_16")
    sf.write(tmp_path / "warm.wav", x[:90 * SR], SR, subtype="PCM_16")
    del x
    script = textwrap.dedent(f"""
        import resource, torch
        from asr.transcribe import load_recognizer, transcribe_files
        torch.set_num_threads(1)
        rec = load_recognizer({str(ckpt)!r})
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        (warm,) = transcribe_files(rec, [{str(tmp_path / 'warm.wav')!r}])
        base = peak()
        (t,) = transcribe_files(rec, [{str(tmp_path / 'long.wav')!r}])
        print(base, peak(), t.duration, len(t.words), t.words[-1].end if t.words else 0)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    base, peak, duration, n_words, last_end = proc.stdout.split()
    growth = float(peak) - float(base)
    assert float(duration) == 1200.0 and int(n_words) > 10
    assert float(last_end) > 1150  # the whole recording was decoded
    # Loading the file whole would take 73 MiB for the waveform and 235 MiB for its complex
    # STFT alone; chunked, the peak stays where a 90 s file put it.
    print(f"20 min: peak RSS grew {growth:.0f} MiB after warm-up on 90 s")
    assert growth < 64, f"peak memory grew by {growth:.0f} MiB transcribing 20 minutes"


def test_progress_bar_and_nbest(ckpt, speech, capsys):
    assert main([*speech, speech[0], "--model", str(ckpt), "--progress", "on"]) == 0
    out, err = capsys.readouterr()
    assert len(out.splitlines()) == 4 and "4/4" in err
    assert main([*speech, speech[0], "--model", str(ckpt), "--progress", "off"]) == 0
    assert capsys.readouterr().err == ""
    pytest.importorskip("flashlight.lib.text.decoder")
    assert main([speech[0], "--model", str(ckpt), "--decoder", "beam", "--nbest", "3", "--beam-size", "8",
                 "--format", "json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert 1 < len(rec["nbest"]) <= 3 and rec["nbest"][0]["text"] == rec["text"]
    scores = [h["score"] for h in rec["nbest"]]
    assert scores == sorted(scores, reverse=True) and len({h["text"] for h in rec["nbest"]}) == len(scores)


@pytest.mark.cuda
def test_cuda_matches_cpu(ckpt, speech):
    from asr.transcribe import load_recognizer

    cpu = load_recognizer(ckpt, "cpu")
    gpu = load_recognizer(ckpt, "cuda")
    for path in speech:  # one at a time: no padding, so packing does not matter
        (a,) = transcribe_files(cpu, [path])
        (b,) = transcribe_files(gpu, [path], device="cuda", precision="fp32")
        assert a.text == b.text and a.duration == b.duration
        (c,) = transcribe_files(gpu, [path], device="cuda")  # bf16/fp16 autocast
        assert all(0 <= w.start <= w.end <= c.duration + 0.1 for w in c.words)


def test_output_into_a_closed_pipe_ends_quietly(ckpt, speech, tmp_path):
    import subprocess
    import sys

    d = tmp_path / "many"
    d.mkdir()
    for i in range(40):
        (d / f"{i:02d}.wav").write_bytes(open(speech[i % len(speech)], "rb").read())
    reader = "import sys; sys.stdin.readline()"  # reads one line, then closes the pipe
    # one piece at a time (--batch-seconds 1), so output keeps coming after the reader has gone
    command = (f"{sys.executable} -m asr.transcribe {d} --model {ckpt} --batch-seconds 1 --chunk-seconds 1 "
               f"| {sys.executable} -c '{reader}'; exit ${{PIPESTATUS[0]}}")
    proc = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=300, executable="/bin/bash")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr[-2000:]
    assert proc.returncode == 128 + 13  # as a Unix tool stopped by SIGPIPE
