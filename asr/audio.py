"""Reading audio: any common format through soundfile, mixed to mono, resampled, float32."""

from __future__ import annotations

import io
import math
import os
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from asr.utils import UserError

SAMPLE_RATE = 16000
#: Extensions searched for when a directory is given.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".oga", ".aiff", ".aif", ".au")
#: Below this rate a file is not speech audio (a corrupt header, usually).
MIN_SAMPLE_RATE = 1000
_EXPECTED = "expected WAV, FLAC, Ogg/Opus or MP3 audio"


class AudioError(UserError):
    """An audio input that cannot be used; the message names the file and the fix."""


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def _open(path: str | os.PathLike) -> tuple[sf.SoundFile, str]:
    name = str(path)
    if name == "-":
        data = sys.stdin.buffer.read()
        if not data:
            raise AudioError(f"-: standard input is empty; {_EXPECTED}")
        source = io.BytesIO(data)
        name = "<stdin>"
    else:
        p = Path(path)
        if not p.exists():
            raise AudioError(f"{name}: no such file; check the path")
        if p.is_dir():
            raise AudioError(f"{name}: is a directory; {_EXPECTED} files")
        if p.stat().st_size == 0:
            raise AudioError(f"{name}: empty file (0 bytes); {_EXPECTED}")
        source = p
    try:
        return sf.SoundFile(source), name
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as e:
        reason = str(e).split(":")[-1].strip() or type(e).__name__
        raise AudioError(f"{name}: not readable as audio ({reason}); {_EXPECTED}") from None


def audio_info(path: str | os.PathLike) -> tuple[float, int]:
    """Duration in seconds and native sample rate, read from the header only."""
    f, name = _open(path)
    with f:
        _check_header(f, name)
        return f.frames / f.samplerate, f.samplerate


def _check_header(f: sf.SoundFile, name: str) -> None:
    if f.samplerate < MIN_SAMPLE_RATE:
        raise AudioError(f"{name}: sample rate {f.samplerate} Hz is not plausible for speech; "
                         f"expected at least {MIN_SAMPLE_RATE} Hz (is the header corrupt?)")
    if f.frames == 0:
        raise AudioError(f"{name}: contains no samples; {_EXPECTED} with at least one sample")


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read an audio file as mono float32 at ``sample_rate``.

    Parameters
    ----------
    path : str or PathLike
        A file in any format libsndfile reads (WAV, FLAC, Ogg/Vorbis, Ogg/Opus, MP3, ...),
        or ``"-"`` for standard input.
    sample_rate : int
        Target rate; other rates are resampled with torchaudio.

    Returns
    -------
    torch.Tensor
        ``(samples,)`` float32.

    Raises
    ------
    AudioError
        Missing file, directory, empty, unreadable, zero-length, implausible rate, too large
        for memory, or non-finite samples. The message is one line naming the file.
    """
    f, name = _open(path)
    with f:
        _check_header(f, name)
        needed = f.frames * max(f.channels, 1) * 4 * 3  # read, mono mix and resample copies
        if needed > _memory_bytes() // 2:
            hours = f.frames / f.samplerate / 3600
            raise AudioError(f"{name}: {hours:.1f} h of audio is too large to load into memory; "
                             "split it first (asr-transcribe handles long files in chunks)")
        try:
            data = f.read(dtype="float32", always_2d=True)  # (samples, channels)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{name}: audio data is corrupt ({e}); {_EXPECTED}") from None
        native_rate = f.samplerate
    return prepare_waveform(data, native_rate, sample_rate, name)


def prepare_waveform(data: np.ndarray, native_rate: int, sample_rate: int, name: str = "audio") -> torch.Tensor:
    """Mix ``(samples, channels)`` or ``(samples,)`` audio to mono, check it, resample it.

    Returns ``(samples,)`` float32 at ``sample_rate``.
    """
    if data.ndim == 2:
        data = data.mean(axis=1)
    if data.size == 0:
        raise AudioError(f"{name}: contains no samples; {_EXPECTED} with at least one sample")
    if not np.isfinite(data).all():
        raise AudioError(f"{name}: contains NaN or infinite samples; re-export the file as PCM audio")
    wave = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if native_rate != sample_rate:
        g = math.gcd(native_rate, sample_rate)
        wave = AF.resample(wave, native_rate // g, sample_rate // g)
    return wave


def find_audio_files(directory: str | os.PathLike) -> list[Path]:
    """Audio files below ``directory`` (recursively, by extension), sorted."""
    root = Path(directory)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
