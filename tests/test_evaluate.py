import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from asr.checkpoint import save_checkpoint
from asr.data import read_manifest
from asr.decoding import Hypothesis
from asr.audio import load_audio
from asr.evaluation import batch_loader, evaluate, iter_outputs, main, utterance_log_probs
from asr.metrics import error_rates
from asr.recognizer import output_steps
from asr.utils import run_cli
from conftest import tiny_recognizer

pytestmark = pytest.mark.usefixtures("single_thread")
SUMMARY = re.compile(r"^WER \d+\.\d\d% CER \d+\.\d\d% \((\d+) utterances\)$")


class LengthDecoder:
    """Decodes every utterance to the number of encoder steps it has, as a word."""

    def decode(self, log_probs, lengths):
        return [[Hypothesis(f"steps{n}")] for n in lengths.tolist()]


def test_evaluate_an_untrained_model(corpus, recognizer):
    utts = read_manifest(corpus.manifest)
    result = evaluate(recognizer, utts, max_batch_seconds=3.0)
    assert result.ids == ["utt-a", "utt-b", "utt-c", "utt-d", "utt-e"]
    assert result.references == ["one two three", "stop", "go left now", "seven eight", "it's blue"]
    assert len(result.hypotheses) == 5 and all(isinstance(h, str) for h in result.hypotheses)
    assert math.isfinite(result.loss) and result.loss > 0
    assert result.rates == error_rates(result.references, result.hypotheses)


def test_hypotheses_are_returned_in_manifest_order(corpus, recognizer):
    utts = read_manifest(corpus.manifest)
    loader = batch_loader(utts, recognizer, max_batch_seconds=2.5)
    batches = list(iter_outputs(recognizer, loader, torch.device("cpu")))
    assert len(batches) > 1  # several duration-sorted batches
    for batch, log_probs, lengths in batches:
        assert log_probs.shape[:2] == (len(batch.indices), lengths.max())
    result = evaluate(recognizer, utts, decoder=LengthDecoder(), max_batch_seconds=2.5)
    expected = [f"steps{output_steps(u.duration, recognizer.feature_cfg, recognizer.model_cfg)}" for u in utts]
    assert result.hypotheses == expected


def test_utterance_log_probs_are_each_utterance_alone_in_manifest_order(corpus, recognizer):
    utts = read_manifest(corpus.manifest)
    batched = utterance_log_probs(recognizer, utts, max_batch_seconds=2.5)  # several length-sorted batches
    assert len(batched) == len(utts)
    with torch.no_grad():
        for u, lp in zip(utts, batched):
            wave = load_audio(u.audio_filepath, recognizer.sample_rate)  # (samples,)
            alone, steps = recognizer(wave[None], torch.tensor([wave.shape[0]]))  # (1, steps, vocab)
            assert lp.shape == (steps[0], len(recognizer.vocab)) and lp.dtype == torch.float32
            assert torch.allclose(lp, alone[0, :steps[0]], atol=1e-5)


def test_a_feature_transform_runs_between_features_and_encoder(corpus, recognizer):
    utts = read_manifest(corpus.manifest)
    plain = utterance_log_probs(recognizer, utts)
    seen = []

    def identity(feats):
        seen.append(feats.shape)
        return feats

    assert all(torch.equal(x, y) for x, y in zip(plain, utterance_log_probs(recognizer, utts, transform=identity)))
    assert seen and all(len(s) == 3 and s[2] == recognizer.feature_cfg.n_mels for s in seen)  # (batch, frames, n_mels)
    silenced = utterance_log_probs(recognizer, utts, transform=torch.zeros_like)
    assert [x.shape for x in silenced] == [x.shape for x in plain]
    assert not all(torch.allclose(x, y, atol=1e-3) for x, y in zip(plain, silenced))


def test_results_do_not_depend_on_the_batch_size(corpus, recognizer):
    utts = read_manifest(corpus.manifest)  # durations differ, so large batches are padded
    alone = evaluate(recognizer, utts, max_batch_seconds=0.01)  # one utterance per batch
    together = evaluate(recognizer, utts, max_batch_seconds=1000.0)
    assert together.hypotheses == alone.hypotheses
    assert together.loss == pytest.approx(alone.loss, rel=1e-5)


def test_an_empty_n_best_list_counts_as_an_empty_hypothesis(corpus, recognizer):
    class Silent:
        def decode(self, log_probs, lengths):
            return [[] for _ in lengths]

    result = evaluate(recognizer, read_manifest(corpus.manifest), decoder=Silent())
    assert result.hypotheses == [""] * 5 and result.rates.wer == 1.0


def test_report_lists_aligned_errors_per_utterance(corpus, recognizer):
    utts = read_manifest(corpus.manifest)[:2]
    result = evaluate(recognizer, utts)
    result.hypotheses[:] = ["one too three four", "stop"]
    report = result.report()
    first, second = report["utterances"]
    assert first["reference"] == "one two three" and first["hypothesis"] == "one too three four"
    assert (first["substitutions"], first["deletions"], first["insertions"]) == (1, 0, 1)
    assert first["errors"] == [{"op": "substitute", "ref": "two", "hyp": "too"},
                               {"op": "insert", "ref": "", "hyp": "four"}]
    assert second["errors"] == [] and second["id"] == "utt-b"
    assert report["summary"]["loss"] == result.loss and report["summary"]["utterances"] == 2


def test_report_breaks_wer_down_per_speaker(corpus, recognizer, tmp_path):
    rows = [json.loads(line) for line in corpus.manifest.read_text().splitlines()]
    for row, spk in zip(rows, ["ann", "bob", "ann", None, "bob"]):
        row["audio_filepath"] = str(corpus.root / row["audio_filepath"])
        row.pop("speaker", None)  # the voice's name, as the synthetic corpus writes it
        if spk:
            row["speaker"] = spk
    manifest = tmp_path / "spk.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = evaluate(recognizer, read_manifest(manifest))
    result.hypotheses[:] = ["one two three", "", "go left now", "seven", "it's blue"]  # ann right, bob 1 of 3
    speakers = result.report()["speakers"]
    assert set(speakers) == {"ann", "bob"}  # the utterance without a speaker is in no group
    assert speakers["ann"]["wer"] == 0 and speakers["ann"]["utterances"] == 2 and speakers["ann"]["words"] == 6
    assert speakers["bob"]["deletions"] == 1 and speakers["bob"]["wer"] == pytest.approx(1 / 3)
    for row in rows:
        row.pop("speaker", None)
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert "speakers" not in evaluate(recognizer, read_manifest(manifest)).report()


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, tiny_recognizer().describe())
    return path


def test_cli_prints_the_summary_and_writes_a_report(corpus, checkpoint, tmp_path, capsys):
    report = tmp_path / "out" / "report.json"
    assert main(["--model", str(checkpoint), "--manifest", str(corpus.manifest), "--report", str(report),
                 "--device", "cpu", "--batch-seconds", "4"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert SUMMARY.match(last) and SUMMARY.match(last).group(1) == "5"
    data = json.loads(report.read_text())
    s = data["summary"]
    assert last == f"WER {100 * s['wer']:.2f}% CER {100 * s['cer']:.2f}% (5 utterances)"
    assert [u["id"] for u in data["utterances"]] == [u.id for u in corpus.utterances]
    assert {"reference", "hypothesis", "errors", "substitutions", "deletions", "insertions"} <= set(
        data["utterances"][0])
    assert [p.name for p in report.parent.iterdir()] == ["report.json"]


@pytest.mark.parametrize("args, message", [
    (["--manifest", "MISSING.jsonl"], "manifest not found"),
    (["--batch-seconds", "0"], "--batch-seconds 0.0: expected a positive number"),
    (["--model", "MISSING.pt"], "checkpoint not found"),
])
def test_cli_user_errors_are_one_line_and_exit_2(corpus, checkpoint, args, message, capsys):
    argv = {"--model": str(checkpoint), "--manifest": str(corpus.manifest), "--device": "cpu"}
    argv.update(dict(zip(args[::2], args[1::2])))
    assert run_cli(main, [x for kv in argv.items() for x in kv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_bad_manifest_path_in_a_real_process(checkpoint, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "asr.evaluation", "--model", str(checkpoint),
                           "--manifest", str(tmp_path / "nope.jsonl")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "nope.jsonl: manifest not found" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_output_manifest_round_trip_gives_the_same_wer_without_the_model(corpus, tiny_checkpoint, tmp_path, capsys):
    from asr.transcribe import main as transcribe_main
    from asr.utils import run_cli

    rows = [json.loads(line) for line in corpus.manifest.read_text().splitlines()]
    manifest = tmp_path / "in.jsonl"  # absolute audio paths, an extra key, and one missing file
    rows = [{**r, "audio_filepath": str(corpus.root / r["audio_filepath"]), "note": i} for i, r in enumerate(rows)]
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out.jsonl"
    assert run_cli(transcribe_main, [str(manifest), "--model", str(tiny_checkpoint), "--cut-pause", "0",
                                     "--output-manifest", str(out)]) == 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [{k: v for k, v in w.items() if k != "pred_text"} for w in written] == rows  # every key kept
    assert all(isinstance(w["pred_text"], str) for w in written)
    capsys.readouterr()
    assert run_cli(main, ["--model", str(tiny_checkpoint), "--manifest", str(manifest)]) == 0
    with_model = capsys.readouterr().out.strip().splitlines()[-1]
    assert run_cli(main, ["--manifest", str(out), "--hyp-key", "pred_text"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == with_model
    # a row without the key is named
    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + json.dumps({**rows[0], "id": "new"}) + "\n")
    assert run_cli(main, ["--manifest", str(bad), "--hyp-key", "pred_text"]) == 2
    assert f"bad.jsonl:{len(rows) + 1}: no 'pred_text' text" in capsys.readouterr().err


def test_output_manifest_marks_inputs_that_failed(corpus, tiny_checkpoint, tmp_path, capsys):
    from asr.transcribe import main as transcribe_main
    from asr.utils import run_cli

    manifest = tmp_path / "in.jsonl"
    good = str(corpus.root / json.loads(corpus.manifest.read_text().splitlines()[0])["audio_filepath"])
    manifest.write_text(json.dumps({"audio_filepath": good, "duration": 1.0, "text": "a"}) + "\n"
                        + json.dumps({"audio_filepath": str(tmp_path / "gone.wav"), "duration": 1.0, "text": "b"})
                        + "\n")
    out = tmp_path / "out.jsonl"
    assert run_cli(transcribe_main, [str(manifest), "--model", str(tiny_checkpoint), "--output-manifest",
                                     str(out)]) == 1
    first, second = (json.loads(line) for line in out.read_text().splitlines())
    assert "pred_error" not in first and second["pred_text"] == "" and "no such file" in second["pred_error"]


def test_a_manifest_from_a_pipe_is_scored_like_the_file(corpus, checkpoint, tmp_path):
    """``asr-evaluate --manifest <(...)`` and ``--manifest /dev/stdin`` (read once, into a
    copy: the report reads the manifest again); relative audio paths in a pipe are
    resolved against the current directory, as a pipe has no folder of its own."""
    def evaluate_cli(manifest: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "asr.evaluation", "--model", str(checkpoint), "--manifest",
                               manifest, "--device", "cpu", "--report", str(tmp_path / "r.json")],
                              capture_output=True, text=True, timeout=300, cwd=corpus.root, **kw)

    file_run = evaluate_cli(str(corpus.manifest))
    assert file_run.returncode == 0, file_run.stderr
    text = corpus.manifest.read_text()
    assert '"audio_filepath": "wav/' in text  # relative: resolved against the working directory below
    stdin_run = evaluate_cli("/dev/stdin", input=text)
    assert stdin_run.returncode == 0, stdin_run.stderr
    assert stdin_run.stdout.splitlines()[-1] == file_run.stdout.splitlines()[-1]
    assert len(json.loads((tmp_path / "r.json").read_text())["utterances"]) == 5
    substitution = subprocess.run(["bash", "-c", f'"$0" -m asr.evaluation --model "$1" --device cpu '
                                  f'--manifest <(cat "$2")', sys.executable, str(checkpoint), str(corpus.manifest)],
                                  capture_output=True, text=True, timeout=300, cwd=corpus.root,
                                  env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert substitution.returncode == 0, substitution.stderr
    assert substitution.stdout.splitlines()[-1] == file_run.stdout.splitlines()[-1]
