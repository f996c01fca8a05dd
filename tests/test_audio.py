"""asr.audio: formats, channels, rates, streaming blocks, memory limits."""

import numpy as np
import pytest
import soundfile as sf
import torch

from asr import audio
from asr.audio import AudioError, audio_info, find_audio_files, load_audio, open_audio


def _tone(rate, seconds=1.0, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t).astype(np.float32)
    return np.stack([x] * channels, 1) if channels > 1 else x


@pytest.mark.parametrize("ext,fmt,subtype", [("wav", "WAV", "PCM_16"), ("flac", "FLAC", "PCM_16"),
                                             ("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"),
                                             ("mp3", "MP3", "MPEG_LAYER_III")])
def test_common_formats_load_as_16k_mono(tmp_path, ext, fmt, subtype):
    rate = 48000 if ext == "opus" else 44100
    path = tmp_path / f"a.{ext}"
    sf.write(path, _tone(rate, 1.0, 2), rate, format=fmt, subtype=subtype)
    wave = load_audio(path)
    assert wave.dtype == torch.float32 and wave.ndim == 1
    assert abs(len(wave) - 16000) < 1200  # lossy codecs pad a little
    spectrum = torch.fft.rfft(wave[2000:14000]).abs()
    assert abs(int(spectrum.argmax()) * 16000 / 12000 - 440) < 5  # still a 440 Hz tone


def test_channels_are_mixed_and_rate_resampled(tmp_path):
    left, right = _tone(22050), np.zeros(22050, np.float32)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 22050, subtype="FLOAT")
    wave = load_audio(tmp_path / "s.wav", 16000)
    assert len(wave) == 16000
    assert abs(float(wave.abs().max()) - 0.15) < 0.01  # mean of the two channels


@pytest.mark.parametrize("rate,channels", [(44100, 2), (16000, 1), (8000, 1), (22050, 3)])
def test_blocks_concatenate_to_the_whole_file(tmp_path, rate, channels):
    rng = np.random.default_rng(0)
    sf.write(tmp_path / "n.wav", rng.normal(0, 0.1, (rate * 3 + 123, channels)).astype(np.float32), rate,
             subtype="FLOAT")
    whole = load_audio(tmp_path / "n.wav")
    with open_audio(tmp_path / "n.wav") as f:
        blocks = list(f.blocks(0.7))
    assert len(blocks) >= 4
    assert torch.allclose(torch.cat(blocks), whole, atol=1e-6)


def test_info_and_directory_search(tmp_path):
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "b.FLAC", _tone(8000, 2.0), 8000)
    sf.write(tmp_path / "a.wav", _tone(16000), 16000)
    (tmp_path / "notes.txt").write_text("hello")
    assert audio_info(tmp_path / "sub" / "b.FLAC") == (2.0, 8000)
    assert [p.name for p in find_audio_files(tmp_path)] == ["a.wav", "b.FLAC"]


@pytest.mark.parametrize("maker,message", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "empty file"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not readable as audio"),
    (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "no samples"),
    (lambda p: sf.write(p, np.array([0.1, np.nan] * 800, np.float32), 16000, subtype="FLOAT"), "NaN or infinite"),
    (lambda p: sf.write(p, np.ones(100, np.float32) * 0.1, 1), "not plausible"),
])
def test_bad_files_raise_one_line_errors(tmp_path, maker, message):
    path = tmp_path / "x.wav"
    maker(path)
    with pytest.raises(AudioError) as e:
        load_audio(path)
    assert message in str(e.value) and str(path) in str(e.value) and "\n" not in str(e.value)


def test_memory_limit_refuses_whole_file_and_streams_in_bounds(tmp_path, monkeypatch):
    sf.write(tmp_path / "big.wav", np.zeros((48000 * 4, 2), np.float32) + 0.01, 48000)
    monkeypatch.setattr(audio, "_memory_bytes", lambda: 2 * 1024 * 1024)  # 1 MiB budget
    with pytest.raises(AudioError, match="only 1 MiB of memory"):
        load_audio(tmp_path / "big.wav")
    with open_audio(tmp_path / "big.wav") as f:  # 0.5 s blocks of 2 channels fit
        assert sum(len(b) for b in f.blocks(0.5)) == 16000 * 4
        with pytest.raises(AudioError, match="a 3 s block"):
            next(f.blocks(3.0))
