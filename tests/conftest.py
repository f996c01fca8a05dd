"""Shared fixtures: a tiny eSpeak NG corpus with a manifest, and small models.

The corpus is synthesised once per test session (a few seconds) into a temporary folder;
nothing here reads ``../shared``, ``exp/`` or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from asr.checkpoint import save_checkpoint
from asr.data import Utterance, write_manifest
from asr.features import FeatureConfig, LogMel
from asr.models import model_config
from asr.recognizer import Recognizer
from asr.synth import Voice, write_corpus
from asr.text import Vocabulary

#: (id, text, voice): short, different lengths and voices; texts with case and punctuation
#: so that normalisation is exercised.
CORPUS_ITEMS = [
    ("utt-a", "One two three.", Voice("en-us", rate=190)),
    ("utt-b", "Stop!", Voice("en+f3", rate=170)),
    ("utt-c", "go LEFT now", Voice("en+m3", rate=210)),
    ("utt-d", "seven, eight", Voice("en-us+klatt", rate=180)),
    ("utt-e", "it's blue", Voice("en+f2", rate=200)),
]


@dataclass(frozen=True)
class Corpus:
    """``manifest``: a NeMo JSON-lines manifest with audio paths relative to its folder
    (``root``); ``utterances`` as :func:`asr.synth.write_corpus` returned them (16 kHz)."""

    root: Path
    manifest: Path
    utterances: list[Utterance]


@pytest.fixture(scope="session", autouse=True)
def _session_corpus(tmp_path_factory) -> Corpus:
    """Made first in every session (autouse): eSpeak NG's output depends on what the process
    synthesised before (its pitch flutter runs on from call to call: the same text twice
    differs after 0.1 s), so the shared corpus is the same audio whichever tests run (a
    subset, another order, mutation testing)."""
    root = tmp_path_factory.mktemp("corpus")
    utts = write_corpus(root / "wav", CORPUS_ITEMS, sample_rate=16000, seed=0)
    manifest = root / "corpus.jsonl"
    write_manifest(manifest, utts)
    return Corpus(root, manifest, utts)


@pytest.fixture(scope="session")
def corpus(_session_corpus) -> Corpus:
    """Five synthesised utterances (0.5-1.5 s each, 16 kHz WAV) and ``corpus.jsonl``."""
    return _session_corpus


def tiny_recognizer(seed: int = 0, n_mels: int = 16, hidden: int = 16, layers: int = 1,
                    rnn_type: str = "lstm", vocab: Vocabulary | None = None, name: str = "birnn",
                    **model) -> Recognizer:
    """A small untrained Recognizer with seeded weights (for shape and plumbing tests);
    ``name`` is the model (:data:`asr.models.MODELS`), ``model`` more of its options."""
    torch.manual_seed(seed)
    cfg = model_config(dict(name=name, rnn_type=rnn_type, hidden_size=hidden, num_layers=layers, dropout=0.0, **model))
    return Recognizer(FeatureConfig(n_mels=n_mels), cfg, vocab or Vocabulary())


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """An untrained checkpoint (40 mels, 1 x 32 BiLSTM) for CLI plumbing tests."""
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_checkpoint(path, tiny_recognizer(n_mels=40, hidden=32).describe())
    return path


@pytest.fixture
def recognizer() -> Recognizer:
    return tiny_recognizer().eval()


def tone(seconds: float, freq: float = 440.0, sample_rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """A sine tone plus a little noise, float32 ``(samples,)``."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    rng = np.random.default_rng(seed)
    wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return torch.from_numpy(wave.astype(np.float32))


def vowel(f0: float, seconds: float = 0.5, sample_rate: int = 16000, formant_scale: float = 1.0) -> torch.Tensor:
    """``(samples,)``: harmonics of ``f0`` under one fixed spectral envelope (three formants,
    their frequencies and widths times ``formant_scale``): the same vowel at another pitch, or from a
    longer or shorter vocal tract."""
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    formants = [(600 * formant_scale, 150 * formant_scale, 1.0), (1800 * formant_scale, 250 * formant_scale, 0.5),
                (2800 * formant_scale, 300 * formant_scale, 0.2)]
    wave = sum(sum(a * np.exp(-((k * f0 - f) / w) ** 2) for f, w, a in formants) * np.sin(2 * np.pi * k * f0 * t)
               for k in range(1, int(4000 / f0)))
    return torch.from_numpy(wave.astype(np.float32))


def steady_spectrum(wave: torch.Tensor, cepstra: int = 0) -> torch.Tensor:
    """Mean log-mel spectrum ``(40,)`` (up to 4 kHz, unnormalised, ``cepstra`` as in
    :class:`FeatureConfig`) over the inner frames of a steady sound such as :func:`vowel`."""
    lm = LogMel(FeatureConfig(n_mels=40, f_max=4000, normalize="none", cepstra=cepstra))
    feats, _ = lm(wave[None], torch.tensor([len(wave)]))
    return feats[0, 5:-5].mean(0)


@pytest.fixture
def single_thread():
    """Run a test with one intra-op thread (tiny tensors on a shared 2-core machine run
    faster so), then restore the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def pytest_collection_modifyitems(config, items):
    """Tests marked ``cuda`` skip cleanly on a machine without a usable GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("cuda"):
            item.add_marker(skip)
