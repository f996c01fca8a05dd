"""The Python API: load_model(...).transcribe(...) and asr.evaluate, including the README
block run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import asr
from asr.checkpoint import save_checkpoint
from asr.lm import build_arpa
from asr.text import Vocabulary
from asr.utils import UserError

from conftest import tiny_recognizer

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, corpus):
    """exp/demo/best.pt (a small untrained model whose greedy output is never empty),
    a.wav, b.flac, lm.arpa and test.jsonl, as the README block names them."""
    d = tmp_path_factory.mktemp("api")
    rec = tiny_recognizer(seed=3, n_mels=40, hidden=32)
    with torch.no_grad():  # emits letters, not only blanks and spaces
        rec.model.classifier.bias.normal_(0.0, 0.3)
        rec.model.classifier.bias[:2] = -3.0
    (d / "exp" / "demo").mkdir(parents=True)
    save_checkpoint(d / "exp" / "demo" / "best.pt", rec.describe())
    first, second = corpus.utterances[0], corpus.utterances[2]
    wave, sr = sf.read(first.audio_filepath, dtype="float32")
    sf.write(d / "a.wav", wave, sr)
    wave, sr = sf.read(second.audio_filepath, dtype="float32")
    sf.write(d / "b.flac", wave, sr)
    (d / "text.txt").write_text("one two three\nstop\ngo left now\n")
    build_arpa(d / "text.txt", d / "lm.arpa", 2, "word", Vocabulary())
    (d / "test.jsonl").write_text(corpus.manifest.read_text().replace('"wav/', f'"{corpus.root}/wav/'))
    return d


def test_the_readme_block_runs_as_written(workdir, monkeypatch):
    block = re.search(r"## Python\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(workdir)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    model = scope["model"]
    assert isinstance(model, asr.Model) and scope["result"].text == model.transcribe("a.wav").text


def test_transcribe_returns_words_with_times_and_a_list_for_a_list(workdir):
    model = asr.load_model(workdir / "exp" / "demo" / "best.pt", device="cpu")
    one = model.transcribe(workdir / "a.wav")
    assert one.text and one.text == " ".join(w.word for w in one.words)
    assert all(0 <= w.start <= w.end <= one.duration + 0.01 and 0 <= w.confidence <= 1 for w in one.words)
    both = model.transcribe([workdir / "a.wav", workdir / "b.flac"], decoder="beam", lm=str(workdir / "lm.arpa"))
    assert isinstance(both, list) and len(both) == 2 and both[1].audio.endswith("b.flac")


def test_an_array_needs_its_rate_and_any_rate_is_resampled(workdir):
    model = asr.load_model(workdir / "exp" / "demo" / "best.pt", device="cpu")
    wave, sr = sf.read(workdir / "a.wav", dtype="float32")
    from_file = model.transcribe(workdir / "a.wav").text
    assert model.transcribe(wave, sample_rate=sr).text == from_file
    assert model.transcribe(torch.from_numpy(wave), sample_rate=sr).text == from_file
    import torchaudio.functional as F

    at_8k = F.resample(torch.from_numpy(wave), sr, 8000).numpy()
    resampled = model.transcribe(at_8k, sample_rate=8000)
    assert abs(resampled.duration - len(wave) / sr) < 0.01  # heard at 16 kHz for as long, not twice as long
    with pytest.raises(UserError, match="needs sample_rate="):
        model.transcribe(wave)


def test_evaluate_scores_a_manifest_and_refuses_bad_options(workdir, corpus):
    result = asr.evaluate(asr.load_model(workdir / "exp" / "demo" / "best.pt", device="cpu"), workdir / "test.jsonl")
    assert len(result.references) == len(corpus.utterances) and result.rates.wer > 0
    assert result.references[0] == "one two three"
    with pytest.raises(UserError, match="--lm needs --decoder beam"):
        asr.evaluate(workdir / "exp" / "demo" / "best.pt", workdir / "test.jsonl", lm="lm.arpa")
    assert set(asr.__all__) >= {"load_model", "evaluate", "Model", "Transcript", "DecodingOptions"}
    assert all(hasattr(asr, name) for name in asr.__all__)
