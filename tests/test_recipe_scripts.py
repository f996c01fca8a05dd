"""Recipe helpers: recipes/folds.py and the digits recipe's --folds (leave-one-speaker-out
summaries), recipes/unseen.py (WER on sentences training never saw), recipes/common.sh's
evaluate_split (when a result is reused)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _fold(exp: Path, speaker: str, **wers: float) -> None:
    d = exp / f"fold-{speaker}"
    d.mkdir(parents=True)
    for name, wer in wers.items():
        (d / f"{name.replace('__', '_wer_')}.txt").write_text(f"WER {wer:.2f}% CER 1.00% (100 utterances)\n")


def test_summary_gives_each_fold_mean_min_and_max(tmp_path):
    _fold(tmp_path, "ann", dev__greedy=10.0, test__greedy=12.0, test__lexicon=6.0)
    _fold(tmp_path, "bob", dev__greedy=20.0, test__greedy=30.0, test__lexicon=9.0)
    out = subprocess.run([sys.executable, ROOT / "recipes/folds.py", tmp_path, "ann", "bob"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "| held out | dev greedy | test greedy | test lexicon |"
    assert out[2] == "| ann | 10.00% | 12.00% | 6.00% |"
    assert out[4] == "| **mean** | 15.00% | 21.00% | 7.50% |"
    assert out[5] == "| **min** | 10.00% | 12.00% | 6.00% |" and out[6] == "| **max** | 20.00% | 30.00% | 9.00% |"


def test_summary_names_a_fold_that_has_not_run(tmp_path):
    _fold(tmp_path, "ann", dev__greedy=10.0)
    run = subprocess.run([sys.executable, ROOT / "recipes/folds.py", tmp_path, "ann", "cat"],
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stderr.startswith("error: ") and "fold-cat" in run.stderr


@pytest.mark.parametrize("exp", ["exp/cv", "abs"])
def test_digits_folds_hold_out_each_corpus_speaker_in_turn(tmp_path, exp):
    corpus = tmp_path / "fsdd" / "recordings"
    corpus.mkdir(parents=True)
    for name in ("0_ann_0.wav", "1_ann_1.wav", "0_bob_0.wav", "3_cat_12.wav", "notes.txt"):
        (corpus / name).touch()
    exp_dir = tmp_path / "exp" if exp == "abs" else Path(exp)
    base = exp_dir if exp_dir.is_absolute() else tmp_path / exp_dir
    for i, spk in enumerate(("ann", "bob", "cat")):
        _fold(base, spk, dev__greedy=10.0 * (i + 1), test__greedy=5.0)
    # stage 0 only, with a corpus given: each fold runs (and does nothing); then the summary
    run = subprocess.run(["bash", ROOT / "recipes/digits/run.sh", "--folds", "--corpus-dir", tmp_path / "fsdd",
                          "--exp-dir", exp_dir, "--stop-stage", "0", "--", "epochs=1"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert [line for line in run.stdout.splitlines() if line.startswith("=== fold")] == [
        "=== fold: ann held out (ann bob cat)", "=== fold: bob held out (ann bob cat)",
        "=== fold: cat held out (ann bob cat)"]
    assert "| **mean** | 20.00% | 5.00% |" in (base / "folds.txt").read_text()


def _kaldi_corpus(root, speakers=10, per_speaker=2):
    """A speechocean762-like corpus ROOT/train/ of silent 0.1 s utterances, all saying HELLO."""
    import numpy as np
    import soundfile as sf

    kaldi = root / "train"
    kaldi.mkdir(parents=True)
    rows = [(f"spk{s}_u{u}", f"spk{s}") for s in range(speakers) for u in range(per_speaker)]
    for utt, _ in rows:
        sf.write(kaldi / f"{utt}.wav", np.zeros(1600, dtype=np.float32), 16000)
    (kaldi / "wav.scp").write_text("".join(f"{u} {kaldi / u}.wav\n" for u, _ in rows))
    (kaldi / "text").write_text("".join(f"{u} HELLO\n" for u, _ in rows))
    (kaldi / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in rows))


def test_speechocean762_folds_deal_the_non_test_speakers_into_dev_folds(tmp_path):
    _kaldi_corpus(tmp_path / "corpus")
    exp = tmp_path / "exp"
    for k in range(3):
        _fold(exp, str(k), dev__greedy=10.0 * (k + 1))
    run = subprocess.run(["bash", ROOT / "recipes/speechocean762/run.sh", "--corpus-dir", tmp_path / "corpus",
                          "--exp-dir", exp, "--folds", "3", "--stop-stage", "1", "--synthetic", "0"],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "| **mean** | 20.00% |" in (exp / "folds.txt").read_text()

    def speakers(k, split):
        lines = (exp / f"fold-{k}" / "data" / f"{split}.jsonl").read_text().splitlines()
        return {json.loads(line)["speaker"] for line in lines}

    test = speakers(0, "test")
    assert test and all(speakers(k, "test") == test for k in range(3))
    devs = [speakers(k, "dev") for k in range(3)]
    assert sorted(len(d) for d in devs) == [3, 3, 3] and set.union(*devs) == {f"spk{s}" for s in range(10)} - test
    assert all(not speakers(k, "train") & (devs[k] | test) for k in range(3))
    bad = subprocess.run(["bash", ROOT / "recipes/speechocean762/run.sh", "--folds", "x"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("run.sh: error: --folds x")


def test_speechocean762_synthetic_voices_speak_each_training_transcript(tmp_path):
    _kaldi_corpus(tmp_path / "corpus", speakers=10, per_speaker=1)
    exp = tmp_path / "exp"
    cmd = ["bash", ROOT / "recipes/speechocean762/run.sh", "--corpus-dir", tmp_path / "corpus", "--exp-dir", exp,
           "--stop-stage", "1", "--synthetic", "2"]
    run = subprocess.run(cmd, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    train = (exp / "data" / "train.jsonl").read_text().splitlines()
    synthetic = [json.loads(line) for line in (exp / "data" / "synthetic2.jsonl").read_text().splitlines()]
    assert len(synthetic) == 2 * len(train) and {u["text"].upper() for u in synthetic} == {"HELLO"}
    assert all((exp / "data" / u["audio_filepath"]).is_file() and u["duration"] > 0.2 for u in synthetic)
    again = subprocess.run(cmd, capture_output=True, text=True)  # prepared once: not spoken again
    assert again.returncode == 0 and "eSpeak" not in again.stdout
    bad = subprocess.run(cmd[:-1] + ["two"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.startswith("run.sh: error: --synthetic two")


def test_evaluate_split_reuses_a_result_only_for_the_same_model_and_options(tmp_path):
    fake = tmp_path / "bin" / "asr-evaluate"  # counts its calls instead of decoding
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\necho "$*" >> "$CALLS"\necho "WER 1.00% CER 1.00% (1 utterances)"\n')
    fake.chmod(0o755)
    model, calls = tmp_path / "best.pt", tmp_path / "calls"
    model.write_bytes(b"weights")
    # An hour old, so a result written now is newer than it (within one clock tick, written
    # right after the model, its mtime can equal the model's, and `-nt` is strict).
    os.utime(model, (time.time() - 3600,) * 2)
    script = f"""set -e
source {ROOT}/recipes/common.sh
export PATH={fake.parent}:$PATH CALLS={calls}
ev() {{ evaluate_split {model} "$1" {tmp_path}/dev_wer_lm.txt {tmp_path}/dev_report.json "${{@:2}}"; }}
ev dev.jsonl --blank-penalty 0; ev dev.jsonl --blank-penalty 0; ev dev.jsonl --blank-penalty 3
ev dev.jsonl --blank-penalty 3; ev other.jsonl --blank-penalty 3
touch -d '+1 hour' {model}; ev other.jsonl --blank-penalty 3
"""
    run = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert [line.split()[3] + " " + line.split()[-1] for line in calls.read_text().splitlines()] == [
        "dev.jsonl 0", "dev.jsonl 3", "other.jsonl 3", "other.jsonl 3"]
    assert run.stdout.count("(done before, skipped)") == 2
    assert (tmp_path / "dev_wer_lm.txt").read_text().startswith("WER 1.00%")
    assert (tmp_path / "dev_wer_lm.txt.args").read_text() == "other.jsonl --blank-penalty 3\n"


def test_unseen_sentences_are_scored_apart_from_seen_ones(tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"audio_filepath": f"{i}.wav", "duration": 1.0, "text": t}) + "\n"
                             for i, t in enumerate(["Good morning.", "see you soon"])))
    report = tmp_path / "report.json"
    utts = [("good morning", "good morning"), ("see you soon", "see you"), ("a new sentence", "a new sentence")]
    report.write_text(json.dumps({"utterances": [{"reference": r, "hypothesis": h} for r, h in utts]}))
    out = subprocess.run([sys.executable, ROOT / "recipes/unseen.py", report, train],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out == ["unseen sentences: WER 0.00% CER 0.00% (1 utterances)",
                   "seen sentences: WER 20.00% CER 20.83% (2 utterances)"]


def _recipe_module(name: str):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / f"recipes/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_word_strings_draws_lines_of_common_words(tmp_path, monkeypatch, capsys):
    import types

    fake = types.ModuleType("wordfreq")
    fake.top_n_list = lambda lang, n, wordlist="best": ["The", "music", "stop", "Go!", "42", "now"][:n]
    monkeypatch.setitem(sys.modules, "wordfreq", fake)
    mod = _recipe_module("word_strings")
    assert mod.main(["50", str(tmp_path / "a.txt"), "5"]) == 0
    lines = (tmp_path / "a.txt").read_text().splitlines()
    assert len(lines) == 50 and all(3 <= len(line.split()) <= 7 for line in lines)
    # the 5 most frequent, normalised; "42" reads as two words, so it is left out
    assert {w for line in lines for w in line.split()} == {"the", "music", "stop", "go"}
    assert mod.main(["50", str(tmp_path / "b.txt"), "5"]) == 0 and \
        (tmp_path / "b.txt").read_text() == (tmp_path / "a.txt").read_text()
    assert mod.main(["50", str(tmp_path / "c.txt"), "5", "6"]) == 0 and \
        (tmp_path / "c.txt").read_text() != (tmp_path / "a.txt").read_text()
    capsys.readouterr()
    assert mod.main(["x", str(tmp_path / "d.txt")]) == 2 and "word_strings.py N OUT.txt" in capsys.readouterr().err


def test_warp_at_factor_one_is_the_recognizer_and_other_factors_change_its_output(corpus, tiny_checkpoint):
    import torch
    from asr.data import read_manifest
    from asr.evaluation import utterance_log_probs
    from asr.recognizer import Recognizer

    warp = _recipe_module("warp")
    rec = Recognizer.from_checkpoint(tiny_checkpoint)
    utts = read_manifest(corpus.manifest)
    direct = utterance_log_probs(rec, utts)  # tested against each utterance alone in test_evaluate.py
    same = warp.warped_log_probs(rec, utts, 1.0)
    lower = warp.warped_log_probs(rec, utts, 0.9)
    assert len(same) == len(lower) == len(utts)
    for i, (x, y) in enumerate(zip(same, lower)):  # manifest order, the recognizer's own frames
        assert torch.allclose(x, direct[i], atol=1e-5)
        assert x.shape == y.shape and not torch.allclose(x, y, atol=1e-3)


def test_label_free_scores_of_a_warp():
    import torch

    warp = _recipe_module("warp")
    spelled = [1, 0, 2, 2, 0]  # frames spelling tokens 1 then 2 (blank 0)
    log_probs = torch.log_softmax(torch.nn.functional.one_hot(torch.tensor(spelled), 3).float() * 6, -1)  # (5, 3)
    right, wrong = warp.transcript_score(log_probs, [1, 2], 0), warp.transcript_score(log_probs, [2, 1], 0)
    assert wrong < right < 0
    assert right > log_probs.max(-1).values.mean().item() - 0.01  # about the best path's per-frame score
    assert warp.transcript_score(log_probs, [], 0) == log_probs[:, 0].mean().item()
    assert warp.confidence(log_probs, 0) == log_probs[[0, 2, 3], [1, 2, 2]].mean().item()  # the non-blank frames
    assert warp.confidence(torch.log_softmax(torch.tensor([[5.0, 0.0]]), -1), 0) == 0.0  # all blank


def test_warp_prints_each_factor_the_label_free_choice_and_the_average(corpus, tiny_checkpoint, capsys, tmp_path):
    import re
    from asr.data import read_manifest
    from asr.evaluation import evaluate
    from asr.recognizer import Recognizer

    warp = _recipe_module("warp")
    assert warp.main([str(tiny_checkpoint), str(corpus.manifest), "--alphas", "0.9,1", "--average", "0.9,1.1"]) == 0
    out = capsys.readouterr().out.splitlines()
    wers = {float(m[1]): m[2] for m in (re.match(r"alpha (\S+): WER +(\S+)%", line) for line in out) if m}
    rates = evaluate(Recognizer.from_checkpoint(tiny_checkpoint), read_manifest(corpus.manifest)).rates
    assert sorted(wers) == [0.9, 1.0] and wers[1.0] == f"{100 * rates.wer:.2f}"
    for line, name in zip(out[2:4], ("score", "confidence")):
        choice = re.match(rf"label-free choice \(highest {name}\): alpha (\S+), WER (\S+)%", line)
        assert choice and wers[float(choice[1])] == choice[2]
    assert re.fullmatch(r"posteriors averaged over 0\.9,1\.1: WER \d+\.\d\d%", out[4])
    with pytest.raises(SystemExit) as bad:
        warp.main([str(tiny_checkpoint), str(corpus.manifest), "--alphas", "0.5"])
    assert bad.value.code == 2 and "warp factor 0.5: expected values within [0.8, 1.25]" in capsys.readouterr().err
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    for model, manifest in ((corpus.manifest, corpus.manifest), (tiny_checkpoint, empty)):
        with pytest.raises(SystemExit) as bad:
            warp.main([str(model), str(manifest)])
        err = capsys.readouterr().err
        assert bad.value.code == 1 and err.startswith("warp.py: error: ") and len(err.splitlines()) == 1
