"""Training loop: exact resume after SIGKILL, SIGTERM checkpointing, non-finite steps,
early stopping and checkpoint averaging. Tiny synthetic corpora, CPU, a few seconds each."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

import asr.train
from asr.checkpoint import list_checkpoints, load_checkpoint, load_latest
from asr.data import DataConfig, Utterance, write_manifest
from asr.features import FeatureConfig
from asr.models import BiRNNConfig, DS2Config
from asr.optim import OptimConfig
from asr.train import TrainConfig, TrainingInterrupted, train
from asr.utils import UserError

REPO = Path(__file__).resolve().parent.parent
WORDS = ["ab", "cd", "ef", "gh", "ij", "kl"]


def write_tone_corpus(root: Path, n: int, seed: int = 0) -> Path:
    """``n`` utterances of noisy tone sequences, 0.6-1.2 s, with 1-2 word transcripts;
    returns the manifest. The audio does not match the text: enough to train on."""
    rng = np.random.default_rng(seed)
    (root / "wav").mkdir(parents=True, exist_ok=True)
    utts = []
    for i in range(n):
        seconds = float(rng.uniform(0.6, 1.2))
        t = np.arange(int(seconds * 16000)) / 16000
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t) + 0.05 * rng.standard_normal(len(t))
        path = root / "wav" / f"t{i:03d}.wav"
        sf.write(path, wave.astype(np.float32), 16000, subtype="PCM_16")
        text = " ".join(rng.choice(WORDS, int(rng.integers(1, 3))))
        utts.append(Utterance(f"t{i:03d}", str(path), len(t) / 16000, text))
    manifest = root / "corpus.jsonl"
    write_manifest(manifest, utts)
    return manifest


@pytest.fixture(scope="module")
def tones(tmp_path_factory) -> tuple[Path, Path]:
    """(train manifest with 16 utterances, dev manifest with 4)."""
    root = tmp_path_factory.mktemp("tones")
    return write_tone_corpus(root / "train", 16, seed=1), write_tone_corpus(root / "dev", 4, seed=2)


# Overrides shared by the subprocess runs: tiny model with dropout, SpecAugment and
# wave augmentation on, so every source of randomness has to be restored on resume.
def cli_overrides(train_m: Path, dev_m: Path, exp_dir: Path, *extra: str) -> list[str]:
    return [f"exp_dir={exp_dir}", f"data.train_manifest={train_m}", f"data.dev_manifest={dev_m}",
            "data.max_batch_size=2", "data.max_batch_seconds=100", "data.num_workers=0",
            "model.hidden_size=24", "model.num_layers=2", "model.dropout=0.3", "features.n_mels=16",
            "augment.time_masks=1", "augment.time_mask_width=5", "augment.freq_masks=1",
            "augment.freq_mask_width=3", "augment.speeds=[0.9,1.0,1.1]", "augment.noise_prob=0.5",
            "optim.warmup_steps=2", "optim.lr=3e-3", "epochs=2", "progress=false", "log_every=1",
            "deterministic=true", *extra]


def run_env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def asr_train(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "asr.train", *args], cwd=REPO, env=run_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def wait_for(proc: subprocess.Popen, condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"training ended (rc {proc.returncode}) before the condition held:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("timed out waiting for training")
        time.sleep(0.002)


@pytest.fixture(autouse=True)
def one_thread():
    """One thread, as in the ``OMP_NUM_THREADS=1`` subprocesses: identical arithmetic for the
    exact-resume comparison, and no thread contention on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sigkill_mid_epoch_then_resume_gives_identical_weights(tones, tmp_path):
    train_m, dev_m = tones
    # B: asr-train with periodic checkpoints every 2 steps, SIGKILLed as soon as one exists.
    b = tmp_path / "b"
    proc = asr_train(cli_overrides(train_m, dev_m, b, "checkpoint_every=2", "keep_last_n=2"))
    wait_for(proc, lambda: bool(list_checkpoints(b, "step")))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    path, state = load_latest(b)
    batches_per_epoch = 8  # 16 utterances, 2 per batch
    assert 0 < state["progress"]["batch"] < batches_per_epoch, "the kill should land inside the first epoch"
    assert state["progress"]["epoch"] == 0 and state["progress"]["step"] % 2 == 0
    cfg = TrainConfig.from_dict(yaml.safe_load((b / "config.yaml").read_text()))  # what asr-train composed
    # A: the same run, uninterrupted and without periodic checkpoints.
    train(dataclasses.replace(cfg, exp_dir=str(tmp_path / "a"), checkpoint_every=0))
    # C: resume B to the end.
    train(dataclasses.replace(cfg, resume=True))
    final_a, final_b = load_checkpoint(tmp_path / "a" / "last.pt"), load_checkpoint(b / "last.pt")
    assert final_a["progress"]["step"] == final_b["progress"]["step"] == 16
    for key, weight in final_a["state_dict"].items():
        assert torch.equal(weight, final_b["state_dict"][key]), key
    adam_a, adam_b = final_a["optimizer"]["state"], final_b["optimizer"]["state"]
    assert all(torch.equal(adam_a[i]["exp_avg_sq"], adam_b[i]["exp_avg_sq"]) for i in adam_a)
    # The resumed run's metrics hold each step once, with the same losses as the uninterrupted run.
    losses = lambda d: [(r["step"], r["loss"]) for r in map(json.loads, (d / "metrics.jsonl").open())  # noqa: E731
                        if r["kind"] == "train"]
    assert losses(b) == losses(tmp_path / "a")
    assert len(list_checkpoints(b, "step")) == 2  # keep_last_n pruned the older periodic ones


class TermAtCall(torch.nn.CTCLoss):
    """CTC that delivers SIGTERM to this process during its ``at``-th call."""

    at = 2
    calls = 0

    def forward(self, *args):
        TermAtCall.calls += 1
        if TermAtCall.calls == TermAtCall.at:
            signal.raise_signal(signal.SIGTERM)
        return super().forward(*args)


def test_sigterm_finishes_the_step_writes_last_checkpoint_and_resumes(tones, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.nn, "CTCLoss", TermAtCall)
    monkeypatch.setattr(TermAtCall, "calls", 0)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at step 2; .* resume=true") as info:
        train(tiny_config(*tones, tmp_path, checkpoint_every=0))
    assert info.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is before  # handler restored
    progress = load_checkpoint(tmp_path / "last.pt")["progress"]
    assert (progress["epoch"], progress["batch"], progress["step"]) == (0, 2, 2)
    monkeypatch.setattr(TermAtCall, "at", 0)
    result = train(tiny_config(*tones, tmp_path, checkpoint_every=0, resume=True))
    assert result["step"] == 8 and result["epoch"] == 2


def test_cli_exits_128_plus_signal_after_interruption(monkeypatch, capsys):
    def interrupted(cfg):
        raise TrainingInterrupted(signal.SIGINT, 7)

    monkeypatch.setattr(asr.train, "train", interrupted)
    with pytest.raises(SystemExit) as info:
        asr.train._run(TrainConfig())
    assert info.value.code == 128 + signal.SIGINT
    assert "stopped by SIGINT at step 7" in capsys.readouterr().err


def tiny_config(train_m: Path, dev_m: Path, exp_dir: Path, **overrides) -> TrainConfig:
    cfg = TrainConfig(exp_dir=str(exp_dir), epochs=2, progress=False, log_every=1,
                      data=DataConfig(train_manifest=str(train_m), dev_manifest=str(dev_m), max_batch_size=4,
                                      max_batch_seconds=100.0, num_workers=0),
                      model=BiRNNConfig(hidden_size=16, num_layers=1, dropout=0.0),
                      features=FeatureConfig(n_mels=16), optim=OptimConfig(lr=3e-3, warmup_steps=1))
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


class FlakyCTC(torch.nn.CTCLoss):
    """CTC whose loss turns NaN on the calls listed in ``bad`` (so the gradients are NaN too)."""

    bad: set[int] = set()
    calls = 0

    def forward(self, *args):
        loss = super().forward(*args)
        FlakyCTC.calls += 1
        return loss * float("nan") if FlakyCTC.calls in FlakyCTC.bad else loss


def test_non_finite_steps_are_skipped_and_counted(tones, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.nn, "CTCLoss", FlakyCTC)
    monkeypatch.setattr(FlakyCTC, "bad", {2, 3})
    monkeypatch.setattr(FlakyCTC, "calls", 0)
    result = train(tiny_config(*tones, tmp_path, epochs=1))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").open()]
    skips = [r for r in records if r["kind"] == "skip"]
    assert [r["in_a_row"] for r in skips] == [1, 2] and skips[-1]["skipped_steps"] == 2
    assert result["skipped_steps"] == 2
    assert result["step"] == 4 - 2  # 16 utterances in batches of 4; two steps skipped
    state = load_checkpoint(tmp_path / "last.pt")
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


def test_too_many_non_finite_steps_in_a_row_stop_training(tones, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.nn, "CTCLoss", FlakyCTC)
    monkeypatch.setattr(FlakyCTC, "bad", set(range(1, 100)))
    monkeypatch.setattr(FlakyCTC, "calls", 0)
    with pytest.raises(UserError, match=r"training diverged: 3 steps in a row .* lower optim.lr"):
        train(tiny_config(*tones, tmp_path, max_bad_steps=3))


def test_early_stopping_and_averaging(tones, tmp_path):
    cfg = tiny_config(*tones, tmp_path, epochs=6, patience=2, average_last=2)
    cfg.optim.lr = 0.0  # the dev WER cannot improve after the first epoch
    result = train(cfg)
    epochs = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").open()) if r["kind"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]  # best at 1, then 2 epochs without improvement
    assert result["averaged_dev_wer"] == pytest.approx(epochs[-1]["dev_wer"])  # equal weights average to themselves
    paths = list_checkpoints(tmp_path, "epoch")
    assert [p.name for p in paths] == ["epoch-001.pt", "epoch-002.pt", "epoch-003.pt"]
    averaged = load_checkpoint(tmp_path / "averaged.pt")
    assert averaged["averaged_from"] == [str(p) for p in paths[-2:]]
    last = load_checkpoint(tmp_path / "last.pt")
    assert last["progress"]["since_best"] == 2 and last["progress"]["epoch"] == 3
    for k, v in averaged["state_dict"].items():
        assert torch.equal(v, last["state_dict"][k]), k
    assert (tmp_path / "best.pt").is_file() and (tmp_path / "curves.png").is_file()


def test_resume_continues_after_completed_epochs(tones, tmp_path):
    train(tiny_config(*tones, tmp_path, epochs=1))
    result = train(tiny_config(*tones, tmp_path, epochs=2, resume=True))
    epochs = [r["epoch"] for r in map(json.loads, (tmp_path / "metrics.jsonl").open()) if r["kind"] == "epoch"]
    assert epochs == [1, 2] and result["step"] == 8


def test_ctc_loss_and_log_softmax_stay_float32_under_autocast(tones, single_thread):
    """CTC and the log-softmax must not run in bf16/fp16 (their sums over long utterances
    lose too much): the training step under CPU bf16 autocast gives float32 throughout."""
    from asr.data import AudioDataset, collate, read_manifest
    from asr.recognizer import Recognizer
    from asr.text import Vocabulary

    vocab = Vocabulary()
    rec = Recognizer(FeatureConfig(n_mels=16), BiRNNConfig(hidden_size=16, num_layers=1), vocab).train()
    utts = read_manifest(tones[0])[:2]
    batch = collate([AudioDataset(utts, vocab, 16000)[i] for i in range(2)])
    seen = {}
    rec.model.register_forward_hook(lambda module, args, out: seen.update(log_probs=out[0].dtype))
    opt = torch.optim.SGD(rec.model.parameters(), lr=0.0)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    loss, norm = asr.train.train_step(rec, rec.model, torch.nn.Identity(), torch.nn.CTCLoss(zero_infinity=True), opt,
                                      scaler, batch, torch.device("cpu"), torch.bfloat16, 5.0)
    assert seen["log_probs"] == torch.float32 and loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16", "fp32"])
def test_trains_on_cuda_with_packed_sequences(tones, tmp_path, precision):
    scaled = precision == "fp16" or (precision == "auto" and not torch.cuda.is_bf16_supported(including_emulation=False))
    result = train(tiny_config(*tones, tmp_path, device="cuda", precision=precision, epochs=1))
    # fp16: the grad scaler starts at 2**16 and skips the first step or two while it backs
    # off (an overflow, logged, not a bad step); every other precision takes all 4 steps.
    assert result["skipped_steps"] == 0 and (1 <= result["step"] <= 4 if scaled else result["step"] == 4)
    state = load_checkpoint(tmp_path / "last.pt")
    assert "cuda" in state["rng"] and all(torch.isfinite(v).all() for v in state["state_dict"].values())
    assert bool(state["scaler"]) == scaled  # the grad scaler runs (and is saved) for fp16 only


@pytest.mark.cuda
@pytest.mark.parametrize("precision", ["auto", "fp16", "bf16"])
def test_cuda_mixed_precision_keeps_the_recurrent_gradients(precision):
    """A recipe-sized model at initialisation: its LSTM gradients are around 1e-8, below
    fp16's range, so fp16 without a loss scale flushes most of them to zero (69% on an H200
    before rnn_precision). The training step (fp16: grad scaler; bf16: recurrent layers in
    float32) must give the float32 gradients: as few zeros, same direction."""
    from asr.data import Batch
    from asr.recognizer import Recognizer
    from asr.text import Vocabulary
    from asr.utils import autocast_dtype

    device = torch.device("cuda")
    vocab = Vocabulary()
    torch.manual_seed(0)
    rec = Recognizer(FeatureConfig(n_mels=80), BiRNNConfig(hidden_size=320, num_layers=5, dropout=0.0),
                     vocab).to(device).train()
    g = torch.Generator().manual_seed(1)
    n, seconds = 16, 12
    batch = Batch(waves=0.1 * torch.randn(n, seconds * 16000, generator=g),
                  wave_lengths=torch.full((n,), seconds * 16000),
                  targets=torch.randint(1, len(vocab), (n, 150), generator=g),
                  target_lengths=torch.full((n,), 150), indices=list(range(n)))
    ctc = torch.nn.CTCLoss(blank=vocab.blank, zero_infinity=True)

    def rnn_grads(amp_dtype):
        opt = torch.optim.SGD(rec.model.parameters(), lr=0.0)
        scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
        asr.train.train_step(rec, rec.model, torch.nn.Identity(), ctc, opt, scaler, batch, device, amp_dtype, 1e9)
        return torch.cat([p.grad.float().flatten() for p in rec.model.rnns.parameters()])

    ref, got = rnn_grads(None), rnn_grads(autocast_dtype(device, precision))
    zeros_ref, zeros_got = (ref == 0).float().mean().item(), (got == 0).float().mean().item()
    assert zeros_got <= zeros_ref + 0.01, (zeros_ref, zeros_got)
    assert torch.nn.functional.cosine_similarity(ref, got, dim=0).item() > 0.95


def test_negative_settings_are_rejected():
    with pytest.raises(ValueError, match="keep_last_n=-1"):
        TrainConfig(keep_last_n=-1)


def test_cli_trains_on_several_comma_separated_manifests(tones, tmp_path):
    train_m, dev_m = tones
    proc = asr_train(cli_overrides(f"'{train_m},{dev_m}'", dev_m, tmp_path / "dup"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "id 't000' is also in" in err and "Traceback" not in err
    extra = write_tone_corpus(tmp_path / "extra", 4, seed=3)
    lines = [json.loads(line) for line in extra.open()]
    extra.write_text("".join(json.dumps({**r, "id": "x" + r["id"]}) + "\n" for r in lines))
    proc = asr_train(cli_overrides(f"'{train_m},{extra}'", dev_m, tmp_path / "run", "epochs=1", "deterministic=false"))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    assert "train: 20 utterances" in (tmp_path / "run" / "train.log").read_text()  # 16 + 4, as one set
    epochs = [r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").open()) if r["kind"] == "epoch"]
    assert epochs[-1]["step"] == 10  # batches of 2


W = "model.classifier.weight"


def test_a_used_exp_dir_is_refused_unless_resumed_or_overwritten(tones, tmp_path):
    train(tiny_config(*tones, tmp_path, epochs=1))
    first = load_checkpoint(tmp_path / "best.pt")
    with pytest.raises(UserError, match="already holds a run .*resume=true.*overwrite=true"):
        train(tiny_config(*tones, tmp_path, epochs=1))
    assert torch.equal(load_checkpoint(tmp_path / "best.pt")["state_dict"][W],
                       first["state_dict"][W])  # the refused run touched nothing
    train(tiny_config(*tones, tmp_path, epochs=1, seed=7, overwrite=True))
    [aside] = tmp_path.glob("replaced-*")
    old = load_checkpoint(aside / "best.pt")  # the first run, moved aside whole
    assert torch.equal(old["state_dict"][W], first["state_dict"][W])
    assert (aside / "metrics.jsonl").is_file() and (aside / "config.yaml").is_file()
    assert not torch.equal(load_checkpoint(tmp_path / "best.pt")["state_dict"][W],
                           first["state_dict"][W])
    epochs = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").open()) if r["kind"] == "epoch"]
    assert len(epochs) == 1  # a fresh metrics.jsonl, not appended to the old one
    assert "overwrite=true: the earlier run" in (tmp_path / "train.log").read_text()


def test_resume_refuses_a_checkpoint_that_does_not_fit_naming_the_keys(tones, tmp_path):
    train(tiny_config(*tones, tmp_path, epochs=1))
    config_before = (tmp_path / "config.yaml").read_text()
    cfg = tiny_config(*tones, tmp_path, epochs=2, resume=True)
    cfg.model = BiRNNConfig(hidden_size=24, num_layers=1, dropout=0.0)
    cfg.optim = OptimConfig(lr=1e-2, warmup_steps=1)
    with pytest.raises(UserError, match=r"model.hidden_size=16 there, 24 now.*optim.lr=0.003 there, 0.01 now.*"
                                        r"cannot change when resuming"):
        train(cfg)
    assert (tmp_path / "config.yaml").read_text() == config_before  # still describes the run there
    result = train(tiny_config(*tones, tmp_path, epochs=2, resume=True))  # more epochs may be asked for
    assert result["step"] == 8 and yaml.safe_load((tmp_path / "config.yaml").read_text())["epochs"] == 2


def test_a_full_disk_while_checkpointing_keeps_the_previous_checkpoint(tones, tmp_path, monkeypatch):
    import errno

    from asr.utils import WriteError
    train(tiny_config(*tones, tmp_path, epochs=1))
    before = load_checkpoint(tmp_path / "last.pt")

    real_fsync = os.fsync

    def full(fd):  # the disk fills up when the first checkpoint is written
        if ".last.pt." in os.readlink(f"/proc/self/fd/{fd}") or ".step-" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(WriteError, match=r"\.pt: could not write it .No space left on device.; the previous file"):
        train(tiny_config(*tones, tmp_path, epochs=2, resume=True, checkpoint_every=0))
    monkeypatch.undo()
    after = load_checkpoint(tmp_path / "last.pt")  # intact (checksum verified) and unchanged
    assert after["progress"] == before["progress"]
    assert not list(tmp_path.glob(".*.tmp"))


def test_cli_refuses_a_second_run_on_a_busy_exp_dir_and_bad_values_before_work(tones, tmp_path):
    train_m, dev_m = tones
    run = tmp_path / "run"
    first = asr_train(cli_overrides(train_m, dev_m, run, "epochs=50", "deterministic=false"))
    try:
        wait_for(first, lambda: (run / "metrics.jsonl").exists())
        second = asr_train(cli_overrides(train_m, dev_m, run, "resume=true"))
        out, err = second.communicate(timeout=240)  # a loaded machine may take a minute to import torch
        assert second.returncode == 2 and "Traceback" not in err
        assert err.strip() == f"error: exp_dir={run} is in use by another training run (PID {first.pid}); " \
                              "wait for it to end, or give this run its own exp_dir=..."
    finally:
        first.kill()
        first.communicate()
    for bad, message in ((["epochs=-1"], "epochs=-1; expected a positive number"),
                         (["data.numbers=keep"], "data: numbers='keep' needs the digits 0-9"),
                         (["+model.hiden_size=32"], "unknown configuration key model.hiden_size (did you mean "
                                                    "model.hidden_size?)")):
        proc = asr_train(cli_overrides(train_m, dev_m, tmp_path / "bad", *bad))
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 2 and err.count("\n") == 1 and message in err, err
        assert not (tmp_path / "bad" / "config.yaml").exists()


def test_cli_sweep_gives_each_job_its_own_exp_dir(tones, tmp_path):
    train_m, dev_m = tones
    proc = asr_train(["-m", *cli_overrides(train_m, dev_m, tmp_path / "sweep", "model.hidden_size=16,24",
                                           "max_steps=1", "deterministic=false")])
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    jobs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert len(jobs) == 2 and all("model.hidden_size=" in p.name for p in jobs)
    sizes = sorted(yaml.safe_load((p / "config.yaml").read_text())["model"]["hidden_size"] for p in jobs)
    assert sizes == [16, 24] and all((p / "best.pt").is_file() for p in jobs)


def test_global_normalisation_fits_the_training_data_and_survives_resume(tones, tmp_path):
    from asr.data import AudioDataset, collate, read_manifest
    from asr.features import LogMel
    from asr.text import Vocabulary

    cfg = tiny_config(*tones, tmp_path, epochs=1)
    cfg.features = FeatureConfig(n_mels=16, normalize="global")
    train(cfg)
    first = load_checkpoint(tmp_path / "last.pt")["state_dict"]
    mean, std = first["features.mean"], first["features.std"]
    # The statistics are those of the training audio, not the defaults (0 and 1).
    reference = LogMel(cfg.features)
    loader = torch.utils.data.DataLoader(AudioDataset(read_manifest(tones[0]), Vocabulary(), 16000), batch_size=16,
                                         collate_fn=collate)
    reference.fit_global_stats((b.waves, b.wave_lengths) for b in loader)
    assert torch.allclose(mean, reference.mean, atol=1e-4) and torch.allclose(std, reference.std, atol=1e-4)
    assert mean.abs().max() > 1.0 and not torch.allclose(std, torch.ones_like(std))
    # Resumed on other audio (the dev set), the model keeps the statistics it was trained with.
    resumed = tiny_config(tones[1], tones[1], tmp_path, epochs=2, resume=True)
    resumed.features = cfg.features
    train(resumed)
    after = load_checkpoint(tmp_path / "last.pt")["state_dict"]
    assert torch.equal(after["features.mean"], mean) and torch.equal(after["features.std"], std)


@pytest.mark.parametrize("normalize", ["speech_mean", "global"])
def test_features_from_the_loader_worker_train_the_weights_of_features_in_the_step(tones, tmp_path, monkeypatch,
                                                                                   normalize):
    """CPU training with a loader worker computes the log-mel features there (global
    statistics fitted before the worker starts); the weights equal a run without workers,
    whose step computes them."""
    def run(exp_dir, workers):
        cfg = tiny_config(*tones, exp_dir, epochs=1, deterministic=True)
        cfg.features = FeatureConfig(n_mels=16, normalize=normalize)
        cfg.data.num_workers = workers
        cfg.model = BiRNNConfig(hidden_size=16, num_layers=1, dropout=0.3)
        train(cfg)
        return load_checkpoint(exp_dir / "last.pt")["state_dict"]

    in_step = run(tmp_path / "a", 0)
    steps_seen = []
    real_step = asr.train.train_step
    # train_step's seventh argument is the batch.
    monkeypatch.setattr(asr.train, "train_step", lambda *a: steps_seen.append(a[6].feats is not None) or real_step(*a))
    in_worker = run(tmp_path / "b", 1)
    assert steps_seen and all(steps_seen)  # every step got the worker's features
    for key, weight in in_step.items():
        assert torch.equal(weight, in_worker[key]), key


# CTC calls: 1-4 the steps of epoch 1, 5 its validation, 6 the first step of epoch 2.
@pytest.mark.parametrize("stop_at,steps", [(4, {4}), (5, {4, 5}), (6, {5})])
def test_resume_across_the_epoch_boundary_with_a_loader_worker_is_exact(tones, tmp_path, monkeypatch, stop_at, steps):
    """With dropout, SpecAugment, wave augmentation and one data-loading worker process,
    a run stopped (SIGTERM) at or after an epoch's end and resumed ends with the very
    weights of an uninterrupted run."""
    def config(exp_dir, **kw):
        cfg = tiny_config(*tones, exp_dir, checkpoint_every=0, deterministic=True, **kw)
        cfg.data.num_workers = 1
        cfg.model = BiRNNConfig(hidden_size=16, num_layers=1, dropout=0.3)
        cfg.augment.time_masks, cfg.augment.time_mask_width, cfg.augment.speeds = 1, 5, [0.9, 1.0, 1.1]
        cfg.augment.noise_prob = 0.5
        return cfg

    train(config(tmp_path / "a"))
    monkeypatch.setattr(torch.nn, "CTCLoss", TermAtCall)
    monkeypatch.setattr(TermAtCall, "calls", 0)
    monkeypatch.setattr(TermAtCall, "at", stop_at)
    with pytest.raises(TrainingInterrupted):
        train(config(tmp_path / "b"))
    progress = load_checkpoint(tmp_path / "b" / "last.pt")["progress"]
    assert progress["step"] in steps
    monkeypatch.setattr(TermAtCall, "at", 0)
    train(config(tmp_path / "b", resume=True))
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("a", "b"))
    assert a["progress"]["step"] == b["progress"]["step"] == 8
    for key, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][key]), key


def test_cli_trains_ds2_and_resumes_it(tones, tmp_path):
    """asr-train model=ds2 for two steps, then resume=true for two more: the same ds2 run;
    resuming it with the default model is refused, naming the key."""
    from asr.models import DS2CTC
    from asr.recognizer import Recognizer

    train_m, dev_m = tones
    run = tmp_path / "ds2"
    args = cli_overrides(train_m, dev_m, run, "model=ds2", "model.time_stride=3", "deterministic=false")
    for extra, step in ((["max_steps=2"], 2), (["max_steps=4", "resume=true"], 4)):
        proc = asr_train([*args, *extra])
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-2000:]
        state = load_checkpoint(run / "last.pt")
        assert state["progress"]["step"] == step and state["model_config"]["name"] == "ds2"
    assert "resumed from" in (run / "train.log").read_text()
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["time_stride"] == 3
    rec = Recognizer.from_checkpoint(run / "best.pt")
    assert type(rec.model) is DS2CTC and rec.model_cfg.time_stride == 3 and rec.frame_shift == pytest.approx(0.03)
    proc = asr_train([*cli_overrides(train_m, dev_m, run, "deterministic=false"), "resume=true"])
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "model.name='ds2' there, 'birnn' now" in err and "Traceback" not in err


def test_ds2_stopped_and_resumed_ends_with_the_weights_of_an_uninterrupted_run(tones, tmp_path, monkeypatch):
    """Batch norm's running statistics and step count are part of the state: a ds2 run
    stopped by SIGTERM mid-epoch and resumed matches one that ran through."""
    def config(exp_dir, **kw):
        cfg = tiny_config(*tones, exp_dir, checkpoint_every=0, deterministic=True, epochs=1, **kw)
        cfg.model = DS2Config(hidden_size=16, num_layers=1, dropout=0.3, conv_channels=4)
        return cfg

    train(config(tmp_path / "a"))
    monkeypatch.setattr(torch.nn, "CTCLoss", TermAtCall)
    monkeypatch.setattr(TermAtCall, "calls", 0)
    monkeypatch.setattr(TermAtCall, "at", 2)
    with pytest.raises(TrainingInterrupted):
        train(config(tmp_path / "b"))
    monkeypatch.setattr(TermAtCall, "at", 0)
    train(config(tmp_path / "b", resume=True))
    a, b = (load_checkpoint(tmp_path / d / "last.pt") for d in ("a", "b"))
    assert a["progress"]["step"] == b["progress"]["step"] == 4
    assert int(a["state_dict"]["model.conv.norms.0.num_batches_tracked"]) == 4  # training steps; dev runs in eval
    for key, weight in a["state_dict"].items():
        assert torch.equal(weight, b["state_dict"][key]), key


def test_a_small_dev_shm_is_warned_about_before_training(monkeypatch, caplog):
    """librispeech_100's loader (8 workers x 2 batches of 1,200 s, speeds down to 0.9) needs
    about 1.3 GB of /dev/shm; a container's default 64 MB makes the workers die mid-epoch."""
    import collections

    cfg = TrainConfig(data=DataConfig(num_workers=8, max_batch_seconds=1200.0))
    cfg.augment.speeds = [0.9, 1.0, 1.1]
    need = asr.train.shared_memory_needed(cfg)
    assert need == int(8 * 2 * 1200 / 0.9 * 16000 * 4)
    # CPU training: the workers also hand over the features, 80 floats per 160 samples.
    assert asr.train.shared_memory_needed(cfg, features=True) == pytest.approx(1.5 * need)
    usage = collections.namedtuple("usage", "total used free")
    for free, warned in ((need + 1, False), (64 * 2**20, True)):  # the small one last (see below)
        caplog.clear()
        monkeypatch.setattr(asr.train.shutil, "disk_usage", lambda path, free=free: usage(free, 0, free))
        with caplog.at_level("WARNING", logger="asr.train"):
            asr.train._check_shared_memory(cfg)
        assert ("64 MB free" in caplog.text and "--shm-size" in caplog.text) == warned
    caplog.clear()
    cfg.data.num_workers = 0  # no workers, no shared memory: 64 MB free is fine
    with caplog.at_level("WARNING", logger="asr.train"):
        asr.train._check_shared_memory(cfg)
    assert "--shm-size" not in caplog.text


def test_early_stopping_and_averaging_while_the_weights_move(tones, tmp_path, monkeypatch):
    """With a real learning rate: the run stops ``patience`` epochs after its best dev WER
    (dev WERs scripted: best at epoch 2), ``best.pt`` holds epoch 2's weights, and
    ``averaged.pt`` is the element-wise mean of the last two epochs' (different) weights."""
    from asr.metrics import ErrorRates

    wers = iter([0.9, 0.5, 0.6, 0.55, 0.4, 0.3])
    monkeypatch.setattr(asr.train, "_evaluate_dev", lambda *a: (1.0, ErrorRates(next(wers), 0.5, 0, 0, 0, 1, 1)))
    cfg = tiny_config(*tones, tmp_path, epochs=6, patience=2, average_last=2)
    result = train(cfg)
    epochs = [r["epoch"] for r in map(json.loads, (tmp_path / "metrics.jsonl").open()) if r["kind"] == "epoch"]
    assert epochs == [1, 2, 3, 4] and result["best_dev_wer"] == 0.5
    e2, e3, e4 = (load_checkpoint(tmp_path / "checkpoints" / f"epoch-00{i}.pt")["state_dict"] for i in (2, 3, 4))
    best, averaged = load_checkpoint(tmp_path / "best.pt"), load_checkpoint(tmp_path / "averaged.pt")
    assert best["progress"]["epoch"] == 2
    assert any(k.startswith("model.") and not torch.equal(e3[k], e4[k]) for k in e3)  # the weights moved
    for k, v in averaged["state_dict"].items():
        assert torch.equal(best["state_dict"][k], e2[k]), k
        if v.is_floating_point():
            torch.testing.assert_close(v, (e3[k] + e4[k]) / 2, msg=k)
