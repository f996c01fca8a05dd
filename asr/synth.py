"""Offline speech synthesis with eSpeak NG, for demo corpora, test fixtures and extra
training voices (``asr-prepare synthetic``: any transcripts spoken by random voices).

eSpeak NG is reached through the ``espeakng-loader`` package, which bundles the
shared library and its voice data, so no system package is needed. The library
keeps global state: synthesise from one thread per process.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE = 1, 2, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

#: Voice variants that ship with eSpeak NG; combined with a language as ``en+NAME``.
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
    "klatt", "klatt2", "klatt3", "croak", "whisper", "Andy", "Annie", "Denis", "Gene",
    "Jacky", "Lee", "Mario", "Michael", "Mike", "Storm", "adam", "aunty", "boris",
    "caleb", "david", "ed", "edward", "grandma", "grandpa", "iven", "john", "linda",
    "max", "norbert", "quincy", "rob", "robert", "steph", "travis", "zac",
)


@dataclass(frozen=True)
class Voice:
    """How to speak: ``name`` is an eSpeak NG voice such as ``en-us`` or ``en+f3``;
    ``rate`` in words per minute (80-450), ``pitch`` and ``pitch_range`` 0-100."""

    name: str = "en-us"
    rate: int = 170
    pitch: int = 50
    pitch_range: int = 50


class _Engine:
    _lock = threading.Lock()
    _instance: "_Engine | None" = None

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if self.sample_rate <= 0:
            raise RuntimeError("eSpeak NG failed to initialise (espeakng-loader data missing?)")
        self._chunks: list[np.ndarray] = []

        def collect(wav, n, _events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(collect)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]

    @classmethod
    def get(cls) -> "_Engine":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def speak(self, text: str, voice: Voice) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice.name!r}; try 'en-us' or 'en+f3'")
        for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks = []
        data = text.encode("utf-8") + b"\0"
        self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, 0, None, None)
        self.lib.espeak_Synchronize()
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0


def synthesize(text: str, voice: Voice = Voice()) -> tuple[np.ndarray, int]:
    """Speak ``text`` with eSpeak NG.

    Returns
    -------
    audio : np.ndarray, float32, shape (samples,), in [-1, 1]
    sample_rate : int
        eSpeak NG's native rate (22050 Hz).
    """
    with _Engine._lock:
        engine = _Engine.get()
        return engine.speak(text, voice), engine.sample_rate


def render(text: str, voice: Voice, sample_rate: int = 16000, rng: np.random.Generator | None = None,
           pad_seconds: tuple[float, float] = (0.05, 0.3), snr_db: tuple[float, float] = (25.0, 45.0)) -> np.ndarray:
    """Speak ``text`` at ``sample_rate`` with random leading/trailing silence and a little
    white noise (so silence is not digital zero). Returns float32 ``(samples,)``."""
    import torch
    import torchaudio.functional as AF

    rng = rng or np.random.default_rng(0)
    audio, native = synthesize(text, voice)
    if native != sample_rate:
        audio = AF.resample(torch.from_numpy(audio), native, sample_rate).numpy()
    lead, trail = (int(rng.uniform(*pad_seconds) * sample_rate) for _ in range(2))
    audio = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(trail, np.float32)])
    power = float(np.mean(audio ** 2)) + 1e-12
    noise_power = power / 10 ** (rng.uniform(*snr_db) / 10)
    audio = audio + rng.normal(0, np.sqrt(noise_power), len(audio)).astype(np.float32)
    return (audio / max(1.0, float(np.abs(audio).max()) / 0.95)).astype(np.float32)


def random_voice(rng: np.random.Generator, variants: list[str] | tuple[str, ...] = VARIANTS) -> Voice:
    """A voice with a random variant, accent (US or British English), rate and pitch."""
    return Voice(f"{rng.choice(['en-us', 'en'])}+{rng.choice(list(variants))}", rate=int(rng.integers(130, 230)),
                 pitch=int(rng.integers(25, 75)), pitch_range=int(rng.integers(30, 80)))


def write_corpus(out_dir, items, sample_rate: int = 16000, seed: int = 0, manifest=None):
    """Render ``items`` — ``(utterance_id, text, Voice)`` triples — to 16-bit WAV files in
    ``out_dir`` and return their :class:`asr.data.Utterance` records (``speaker`` is the
    voice's name), also written to the JSON-lines ``manifest`` when one is given."""
    from pathlib import Path

    import soundfile as sf

    from asr.data import Utterance, write_manifest

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    utts = []
    for uid, text, voice in items:
        audio = render(text, voice, sample_rate, rng)
        path = out_dir / f"{uid}.wav"
        sf.write(path, audio, sample_rate, subtype="PCM_16")
        utts.append(Utterance(uid, str(path), len(audio) / sample_rate, text, {"speaker": voice.name}))
    if manifest is not None:
        write_manifest(manifest, utts)
    return utts


def synthesize_texts(texts, out_dir, name: str = "synthetic", copies: int = 1, sample_rate: int = 16000,
                     seed: int = 0):
    """Speak each of ``texts`` ``copies`` times, each time with a random voice
    (:func:`random_voice`: 47 variants, US or British English, random rate and pitch), as
    extra training speakers. Writes ``out_dir/wav/<name>/*.wav`` and ``out_dir/<name>.jsonl``
    (``speaker`` is the voice) and returns the :class:`asr.data.Utterance` records.
    Deterministic for a ``seed``."""
    from pathlib import Path

    texts = [t.strip() for t in texts if t.strip()]
    if not texts or copies < 1:
        raise ValueError(f"nothing to speak: {len(texts)} non-empty texts, {copies} copies")
    rng = np.random.default_rng([seed, 77])
    items = [(f"{name}-{c}-{i:06d}", t, random_voice(rng)) for c in range(copies) for i, t in enumerate(texts)]
    return write_corpus(Path(out_dir) / "wav" / name, items, sample_rate, seed, Path(out_dir) / f"{name}.jsonl")
