import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.synth import VARIANTS, Voice, random_voice, render, synthesize, write_corpus


def test_synthesize_speaks_at_the_native_rate():
    audio, rate = synthesize("hello world")
    assert rate == 22050
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert 0.4 < len(audio) / rate < 3.0
    assert np.abs(audio).max() <= 1.0 and np.sqrt(np.mean(audio ** 2)) > 0.01
    # eSpeak NG keeps wave-generator state between calls in a process, so a repeat is the
    # same speech but not bit-identical (lengths differ by a few samples).
    again, _ = synthesize("hello world")
    assert len(again) == pytest.approx(len(audio), rel=0.01)


def test_longer_text_and_slower_rate_give_longer_audio():
    short, _ = synthesize("one")
    long, _ = synthesize("one two three four five")
    slow, _ = synthesize("one two three four five", Voice(rate=100))
    assert len(short) < len(long) < len(slow)


def test_unknown_voice_is_a_clear_error():
    with pytest.raises(ValueError, match="no voice 'xx-nope'"):
        synthesize("hi", Voice("xx-nope"))


def test_render_resamples_pads_and_adds_a_little_noise():
    rng = np.random.default_rng(0)
    audio = render("stop", Voice("en+f3"), 16000, rng, pad_seconds=(0.2, 0.2), snr_db=(30, 30))
    native, rate = synthesize("stop", Voice("en+f3"))
    assert audio.dtype == np.float32
    assert len(audio) == pytest.approx(len(native) * 16000 / rate + 2 * 0.2 * 16000, abs=2)
    lead = audio[:3000]
    assert 0 < np.abs(lead).max() < 0.05  # silence is quiet, but not digital zero
    assert np.abs(audio).max() <= 0.95 + 1e-6


def test_random_voice_uses_the_given_variants_deterministically():
    voices = [random_voice(np.random.default_rng(s), ["f1", "m2"]) for s in range(20)]
    assert {v.name.split("+")[1] for v in voices} == {"f1", "m2"}
    assert {v.name.split("+")[0] for v in voices} <= {"en-us", "en"}
    assert all(130 <= v.rate < 230 and 25 <= v.pitch < 75 for v in voices)
    assert random_voice(np.random.default_rng(3)) == random_voice(np.random.default_rng(3))
    assert all(v.split("+")[0] == v for v in VARIANTS)


def test_write_corpus_writes_readable_16_bit_wavs(tmp_path):
    utts = write_corpus(tmp_path / "out", [("u1", "Go!", Voice()), ("u2", "two words", Voice("en+m3"))])
    assert [u.id for u in utts] == ["u1", "u2"] and utts[0].text == "Go!"
    assert utts[1].extra == {"speaker": "en+m3"}
    for u in utts:
        info = sf.info(u.audio_filepath)
        assert (info.samplerate, info.subtype, info.channels) == (16000, "PCM_16", 1)
        assert u.duration == pytest.approx(info.frames / 16000)
        assert len(load_audio(u.audio_filepath)) == info.frames


def test_shared_corpus_fixture(corpus):
    assert corpus.manifest.is_file() and len(corpus.utterances) == 5
    assert all(0.3 < u.duration < 3.0 for u in corpus.utterances)


def test_prepare_synthetic_speaks_each_transcript_with_random_voices(tmp_path, capsys):
    from asr.data import read_manifest
    from asr.prepare import main as prepare_main
    from asr.utils import run_cli

    (tmp_path / "t.txt").write_text("stop now\n\ngo left\n")
    assert prepare_main(["synthetic", str(tmp_path / "t.txt"), str(tmp_path / "out"), "--copies", "2",
                         "--name", "tts", "--seed", "3"]) == 0
    assert "4 utterances" in capsys.readouterr().out
    utts = read_manifest(tmp_path / "out" / "tts.jsonl")  # files exist, durations checked
    assert [u.text for u in utts] == ["stop now", "go left"] * 2 and len({u.id for u in utts}) == 4
    assert all(u.extra["speaker"].startswith("en") and u.duration > 0.3 for u in utts)
    assert all(sf.info(u.audio_filepath).samplerate == 16000 for u in utts)
    # a manifest's transcripts are read too, and the voices are drawn from the seed alone
    again = prepare_main(["synthetic", str(tmp_path / "out" / "tts.jsonl"), str(tmp_path / "again"),
                          "--name", "tts", "--seed", "3"])
    assert again == 0 and [u.extra["speaker"] for u in read_manifest(tmp_path / "again" / "tts.jsonl")] == \
        [u.extra["speaker"] for u in utts]
    capsys.readouterr()
    for args, match in [([str(tmp_path / "missing.txt")], "missing.txt: not found"),
                        ([str(tmp_path / "t.txt"), "--copies", "0"], "--copies 0"),
                        ([str(tmp_path / "t.txt"), "--name", "tts", "--seed", "9"], "tts.jsonl already exists")]:
        out = tmp_path / ("out" if "exists" in match else "bad")
        assert run_cli(prepare_main, ["synthetic", args[0], str(out), *args[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and match in err and "\n" not in err
    assert [u.extra["speaker"] for u in read_manifest(tmp_path / "out" / "tts.jsonl")] == \
        [u.extra["speaker"] for u in utts]  # the refused run wrote nothing over it
