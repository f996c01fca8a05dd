"""End to end: synthesise speech -> train -> asr-evaluate -> asr-transcribe, on the CPU.

The corpus is spoken digit strings from eSpeak NG; evaluation uses voices never heard in
training. Chance is about 100% WER (ten equally likely words); the model must get far
below it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from asr.audio import load_audio
from asr.data import read_manifest, write_manifest
from asr.evaluation import evaluate
from asr.recognizer import Recognizer
from asr.robustness import silence_robustness
from asr.synth import Voice, write_corpus
from asr.train import TrainConfig, train

DIGITS = "zero one two three four five six seven eight nine".split()
TRAIN_VARIANTS = ["m1", "m2", "m3", "m5", "f1", "f3", "f5", "klatt", "Michael", "adam", "david", "john"]
TEST_VARIANTS = ["m7", "f2"]


def _items(split: str, n: int, variants: list[str], rng: np.random.Generator):
    for i in range(n):
        text = " ".join(rng.choice(DIGITS, size=rng.integers(1, 4)))
        voice = Voice(f"en-us+{rng.choice(variants)}", rate=int(rng.integers(140, 200)), pitch=int(rng.integers(35, 65)))
        yield f"{split}-{i:04d}", text, voice


@pytest.fixture(scope="module")
def digits_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(7)
    for split, n, variants in (("train", 500, TRAIN_VARIANTS), ("dev", 40, TEST_VARIANTS), ("test", 40, TEST_VARIANTS)):
        utts = write_corpus(root / "wav" / split, _items(split, n, variants, rng), seed=len(split))
        write_manifest(root / f"{split}.jsonl", utts)
    return root


@pytest.mark.slow
def test_train_evaluate_transcribe(digits_corpus, tmp_path):
    exp = tmp_path / "exp"
    # One thread and deterministic kernels: the same model on every run, so the accuracy
    # bounds below are not at the mercy of thread scheduling.
    cfg = TrainConfig(experiment="e2e", exp_dir=str(exp), epochs=16, progress=False, seed=3, threads=1,
                      deterministic=True)
    cfg.data.train_manifest = str(digits_corpus / "train.jsonl")
    cfg.data.dev_manifest = str(digits_corpus / "dev.jsonl")  # best.pt is chosen on dev, never on test
    cfg.data.max_batch_seconds = 20.0
    cfg.data.num_workers = 0
    cfg.features.n_mels = 40
    cfg.model.hidden_size = 96
    cfg.model.num_layers = 2
    cfg.optim.lr = 4e-3
    cfg.optim.warmup_steps = 30
    cfg.augment.silence_prob = 0.5  # as the recipes: silence and pauses the model must ignore
    cfg.augment.pause_prob = 0.3
    result = train(cfg)

    for name in ("best.pt", "last.pt", "config.yaml", "metrics.jsonl", "curves.png"):
        assert (exp / name).is_file(), name
    epochs = [json.loads(line) for line in (exp / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in epochs if r["kind"] == "epoch"]
    assert len(epochs) == 16
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"] / 3

    report = tmp_path / "report.json"
    ev = subprocess.run([sys.executable, "-m", "asr.evaluation", "--model", str(exp / "best.pt"), "--manifest",
                         str(digits_corpus / "test.jsonl"), "--report", str(report), "--device", "cpu"],
                        capture_output=True, text=True, timeout=300)
    assert ev.returncode == 0, ev.stderr
    last = ev.stdout.strip().splitlines()[-1]
    assert last.startswith("WER ") and last.endswith("(40 utterances)"), last
    wer = float(last.split()[1].rstrip("%"))
    # 2.5% measured (one thread, deterministic); a regression that doubles it fails.
    assert wer < 6.0, f"test WER {wer}% on unseen voices: the model learned less than it does"
    library = evaluate(Recognizer.from_checkpoint(exp / "best.pt"), read_manifest(digits_corpus / "test.jsonl"))
    assert abs(wer - 100 * library.rates.wer) < 0.01  # the command is the library function
    print(f"e2e: dev WER {100 * result['best_dev_wer']:.2f}%, test WER {wer:.2f}%")
    rep = json.loads(report.read_text())
    assert len(rep["utterances"]) == 40
    assert {"reference", "hypothesis", "substitutions", "deletions", "insertions"} <= set(rep["utterances"][0])

    manifest = [json.loads(line) for line in (digits_corpus / "test.jsonl").read_text().splitlines()]
    files = [str(digits_corpus / m["audio_filepath"]) for m in manifest[:3]]
    tr = subprocess.run([sys.executable, "-m", "asr.transcribe", *files, "--model", str(exp / "best.pt"),
                         "--format", "json"], capture_output=True, text=True, timeout=300)
    assert tr.returncode == 0, tr.stderr
    outs = [json.loads(line) for line in tr.stdout.splitlines()]
    assert [o["audio"] for o in outs] == files
    correct = sum(o["text"] == m["text"] for o, m in zip(outs, manifest))
    assert correct >= 1, outs
    assert all(abs(o["duration"] - m["duration"]) < 0.01 for o, m in zip(outs, manifest))

    # Silence around the speech, and one long recording of all of it, keep the accuracy.
    test = read_manifest(digits_corpus / "test.jsonl")
    rates = {k: 100 * r.wer for k, r in silence_robustness(Recognizer.from_checkpoint(exp / "best.pt"), test).items()}
    assert rates["plain"] == pytest.approx(wer, abs=0.01)
    print("e2e silence:", {k: round(v, 2) for k, v in rates.items()})
    for condition, tolerance in (("padded_silence", 4.0), ("padded_noise", 4.0), ("joined", 6.0)):
        assert rates[condition] <= rates["plain"] + tolerance, (condition, rates)

    # Word times from the trained recogniser on speech whose word onsets are known: digits
    # spoken one utterance each, joined with 1 s of silence. Each recognised word lies
    # inside the speech of its own utterance (found by energy, 10 ms frames), in order.
    import torch

    from asr.transcribe import Input, transcribe_files

    rec = Recognizer.from_checkpoint(exp / "best.pt")
    waves, spans, t = [], [], 0.0
    for u in test[:8]:
        w = load_audio(u.audio_filepath, 16000)
        frames = w[: len(w) // 160 * 160].reshape(-1, 160).pow(2).mean(1)
        loud = (frames > frames.max() * 10 ** -2).nonzero().squeeze(1)  # within 20 dB of the peak
        spans.append((t + loud[0].item() * 0.01, t + (loud[-1].item() + 1) * 0.01, u.text))
        waves += [w, torch.zeros(16000)]
        t += len(w) / 16000 + 1.0
    joined = torch.cat(waves)
    [result] = transcribe_files(rec, [Input("joined", "joined", "joined", wave=joined)])
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and len(result.words) >= sum(len(s[2].split()) for s in spans) - 2
    for w in result.words:
        inside = [s for s in spans if s[0] - 0.15 <= w.start <= w.end <= s[1] + 0.15]
        assert inside, (w, spans)
    for start, end, text in spans:  # words start where the speech does (CTC ends a final fricative early)
        words = [w for w in result.words if start - 0.15 <= w.start <= end + 0.15]
        assert abs(words[0].start - start) <= 0.12 and abs(words[-1].end - end) <= 0.25, (words, start, end, text)
