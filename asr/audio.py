"""Reading audio: any common format through soundfile, mixed to mono, resampled, float32.

Two ways in: :func:`load_audio` reads a whole file; :func:`open_audio` returns an
:class:`AudioFile` whose :meth:`AudioFile.blocks` streams it in fixed-length blocks, so an
hour-long recording is never held in memory at once. Every problem with an input is an
:class:`AudioError` whose message is one line naming the input and the fix.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from asr.utils import UserError

SAMPLE_RATE = 16000
#: Extensions searched for when a directory is given.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".oga", ".aiff", ".aif", ".au")
#: Below this rate a file is not speech audio (a corrupt header, usually).
MIN_SAMPLE_RATE = 1000
#: Above this rate neither (no audio interface records faster).
MAX_SAMPLE_RATE = 768000
#: Bytes held per decoded sample and channel while reading: the float32 read, the mono
#: mix and the resampled copy.
_BYTES_PER_SAMPLE = 4 * 3
_EXPECTED = "expected WAV, FLAC, Ogg/Opus or MP3 audio"


class AudioError(UserError):
    """An audio input that cannot be used; the message names the file and the fix."""


def _memory_bytes() -> int:
    """Memory this process may use: physical memory, lowered by ``ulimit -v`` and a cgroup limit."""
    limits = []
    try:
        limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        limits.append(1 << 34)
    try:
        import resource

        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, ValueError, OSError):
        pass
    try:
        text = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if text.isdigit():
            limits.append(int(text))
    except OSError:
        pass
    return min(limits)


def _check_memory(name: str, frames: int, channels: int, native_rate: int, what: str) -> None:
    needed = frames * max(channels, 1) * _BYTES_PER_SAMPLE
    budget = _memory_bytes() // 2
    if needed > budget:
        raise AudioError(f"{name}: {what} of {channels} channel(s) at {native_rate} Hz needs "
                         f"{needed / 2**20:.0f} MiB but only {budget / 2**20:.0f} MiB of memory may be used; "
                         "downmix or resample it first (e.g. sox IN -c 1 -r 16000 OUT.flac) or split it")


class AudioFile:
    """An opened audio input (file or standard input) whose header has been checked.

    Attributes
    ----------
    name : str
        The input as the user named it (``-`` for standard input).
    frames, channels, native_rate : int
        From the header.
    """

    def __init__(self, path: str | os.PathLike):
        self.name = str(path)
        self._spool = None
        if self.name == "-":
            source = self._spool = _spool(sys.stdin.buffer, "-", "standard input")
        else:
            p = Path(path)
            if not p.exists():
                raise AudioError(f"{self.name}: no such file; check the path")
            if p.is_dir():
                raise AudioError(f"{self.name}: is a directory; {_EXPECTED} files")
            if not p.is_file():  # a named pipe, <(process substitution), /dev/stdin: read as a stream
                try:
                    with open(p, "rb") as stream:
                        source = self._spool = _spool(stream, self.name, "the stream")
                except OSError as e:
                    raise AudioError(f"{self.name}: cannot read it ({e.strerror}); {_EXPECTED}") from None
            elif p.stat().st_size == 0:
                raise AudioError(f"{self.name}: empty file (0 bytes); {_EXPECTED}")
            else:
                source = p
                _warn_if_truncated(p)
        try:
            self._f = sf.SoundFile(source)
        except (sf.LibsndfileError, RuntimeError, TypeError, OSError, ValueError) as e:
            self.close()
            reason = str(e).split(":")[-1].strip() or type(e).__name__
            raise AudioError(f"{self.name}: not readable as audio ({reason}); {_EXPECTED}") from None
        self.frames, self.channels, self.native_rate = self._f.frames, self._f.channels, self._f.samplerate
        try:
            self._check_header()
        except AudioError:
            self.close()
            raise

    def _check_header(self) -> None:
        if not MIN_SAMPLE_RATE <= self.native_rate <= MAX_SAMPLE_RATE:
            raise AudioError(f"{self.name}: sample rate {self.native_rate} Hz is not plausible for speech; "
                             f"expected {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz (is the header corrupt?)")
        if self.frames <= 0:
            raise AudioError(f"{self.name}: contains no samples; {_EXPECTED} with at least one sample")

    @property
    def duration(self) -> float:
        """Seconds, from the header."""
        return self.frames / self.native_rate

    def __enter__(self) -> "AudioFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if getattr(self, "_f", None) is not None:
            self._f.close()
        if self._spool is not None:
            self._spool.close()

    def _read(self, start: int, stop: int) -> np.ndarray:
        """Native frames ``[start, stop)`` mixed to mono: ``(frames,)`` float32."""
        self._f.seek(start)
        try:
            data = self._f.read(stop - start, dtype="float32", always_2d=True)  # (frames, channels)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise AudioError(f"{self.name}: audio data is corrupt ({e}); {_EXPECTED}") from None
        mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
        if not np.isfinite(mono).all():
            raise AudioError(f"{self.name}: contains NaN or infinite samples "
                             f"(at {start / self.native_rate:.2f} s or later); re-export the file as PCM audio")
        return mono

    def read_all(self, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """The whole input, mono, at ``sample_rate``: ``(samples,)`` float32."""
        _check_memory(self.name, self.frames, self.channels, self.native_rate,
                      f"{self.duration / 3600:.1f} h of audio")
        data = self._read(0, self.frames)
        if len(data) == 0:
            raise AudioError(f"{self.name}: contains no samples; {_EXPECTED} with at least one sample")
        return _resample(torch.from_numpy(np.ascontiguousarray(data)), self.native_rate, sample_rate)

    def read_range(self, offset: float, duration: float | None, sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
        """``duration`` seconds (None: to the end) from ``offset`` seconds, mono, at
        ``sample_rate``: ``(samples,)`` float32. A range beyond the end is an error."""
        start = int(round(offset * self.native_rate))
        stop = self.frames if duration is None else start + int(round(duration * self.native_rate))
        if offset < 0 or start >= self.frames or stop > self.frames + int(0.01 * self.native_rate):
            raise AudioError(f"{self.name}: segment {offset:.2f}-{offset + (duration or 0):.2f} s lies outside the "
                             f"recording ({self.duration:.2f} s); check the segment times")
        _check_memory(self.name, stop - start, self.channels, self.native_rate, f"a {duration or 0:g} s segment")
        data = self._read(start, min(stop, self.frames))
        return _resample(torch.from_numpy(np.ascontiguousarray(data)), self.native_rate, sample_rate)

    def blocks(self, seconds: float, sample_rate: int = SAMPLE_RATE) -> Iterator[torch.Tensor]:
        """Stream the input as consecutive mono blocks at ``sample_rate``.

        Each block is ``(samples,)`` float32 of about ``seconds`` (the last one shorter);
        concatenated they equal :meth:`read_all` (resampling reads a little context on both
        sides of each block, so there are no seams). Memory is bounded by the block length.
        """
        g = math.gcd(self.native_rate, sample_rate)
        unit_in, unit_out = self.native_rate // g, sample_rate // g  # resampling period, in and out
        block = max(1, round(seconds * self.native_rate / unit_in)) * unit_in
        context = 0 if unit_in == unit_out else -(-256 // unit_in) * unit_in
        _check_memory(self.name, min(block + 2 * context, self.frames), self.channels, self.native_rate,
                      f"a {seconds:g} s block")
        resampler = None if unit_in == unit_out else _resampler(self.native_rate, sample_rate)
        for start in range(0, self.frames, block):
            stop = min(start + block, self.frames)
            lo, hi = max(0, start - context), min(self.frames, stop + context)
            wave = torch.from_numpy(np.ascontiguousarray(self._read(lo, hi)))
            if resampler is not None:
                wave = resampler(wave)
                first = (start - lo) // unit_in * unit_out
                wave = wave[first:first + -(-(stop - start) * unit_out // unit_in)]
            yield wave


def _spool(stream, name: str, what: str):
    """Copy a stream (standard input, a named pipe) to an anonymous temporary file
    (seekable, not held in memory)."""
    spool = tempfile.TemporaryFile()
    try:
        shutil.copyfileobj(stream, spool, 1 << 20)
    except OSError as e:
        spool.close()
        raise AudioError(f"{name}: could not buffer {what} ({e.strerror or e}); pass a file path instead") from None
    if spool.tell() == 0:
        spool.close()
        raise AudioError(f"{name}: {what} is empty (or was already read); {_EXPECTED}")
    spool.seek(0)
    return spool


def audio_suffix(data: bytes, default: str = ".wav") -> str:
    """The file extension for encoded audio ``data`` by its magic bytes (FLAC, Ogg, WAV)."""
    return {b"fLaC": ".flac", b"OggS": ".ogg", b"RIFF": ".wav"}.get(data[:4], default)


class AudioWarning(UserWarning):
    """Audio that can be used, but not as its header describes it."""


def _warn_if_truncated(path: Path) -> None:
    """Warn when a WAV file's header promises more sample data than the file holds (a
    copy or recording cut short); libsndfile then reads what is there without a word."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return
    order = "little" if head[:4] == b"RIFF" else "big"
    pos = 12
    while pos + 8 <= len(head):
        size = int.from_bytes(head[pos + 4:pos + 8], order)
        if head[pos:pos + 4] == b"data":
            held = path.stat().st_size - (pos + 8)
            if 0 < held < size < 0xFFFFF000:  # 0 and about 4 GiB: placeholders of streaming recorders
                warnings.warn(f"{path}: truncated WAV file: the header promises {size} bytes of audio, the file "
                              f"holds {held} ({100 * held / size:.0f}%); using what is there", AudioWarning,
                              stacklevel=3)
            return
        pos += 8 + size + (size & 1)


_RESAMPLERS: dict[tuple[int, int], torchaudio.transforms.Resample] = {}


def _resampler(native_rate: int, sample_rate: int) -> torchaudio.transforms.Resample:
    key = (native_rate, sample_rate)
    if key not in _RESAMPLERS:
        if len(_RESAMPLERS) > 8:
            _RESAMPLERS.clear()
        _RESAMPLERS[key] = torchaudio.transforms.Resample(native_rate, sample_rate)
    return _RESAMPLERS[key]


def _resample(wave: torch.Tensor, native_rate: int, sample_rate: int) -> torch.Tensor:
    return wave if native_rate == sample_rate else _resampler(native_rate, sample_rate)(wave)


def open_audio(path: str | os.PathLike) -> AudioFile:
    """Open an audio file (or ``"-"``, standard input) and check its header.

    Raises
    ------
    AudioError
        Missing path, directory, empty file, unreadable or truncated header, random bytes,
        no samples, or an implausible sample rate.
    """
    return AudioFile(path)


def audio_info(path: str | os.PathLike) -> tuple[float, int]:
    """Duration in seconds and native sample rate, read from the header only."""
    with open_audio(path) as f:
        return f.duration, f.native_rate


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE, offset: float | None = None,
               duration: float | None = None) -> torch.Tensor:
    """Read an audio file (or the ``duration`` seconds from ``offset`` of it: a segment of a
    longer recording, as Kaldi's ``segments`` name them) as mono float32 at ``sample_rate``.

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
        for memory (use :meth:`AudioFile.blocks` to stream), or non-finite samples. The
        message is one line naming the file.
    """
    with open_audio(path) as f:
        if offset is None and duration is None:
            return f.read_all(sample_rate)
        return f.read_range(offset or 0.0, duration, sample_rate)


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
    return _resample(wave, native_rate, sample_rate)


def find_audio_files(directory: str | os.PathLike) -> list[Path]:
    """Audio files below ``directory`` (recursively, by extension), sorted."""
    root = Path(directory)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())
