"""Export a checkpoint for deployment, and run the exported model. CLI: ``asr-export``.

``asr-export --model CKPT --format onnx OUT.onnx`` writes the acoustic model (normalised
log-mel features -> CTC log-probabilities) as ONNX with dynamic batch and time axes; the
file carries the vocabulary and the feature and model configuration (and global feature
statistics) as metadata under the key ``asr``, so it describes itself.
:class:`OnnxRecognizer` runs it with onnxruntime, computing the log-mel features with
torchaudio (the STFT front end stays in PyTorch); ``asr-transcribe --model OUT.onnx``
uses it. ``--format torchscript`` traces the whole recogniser (waveforms -> log-probs)
with the same metadata in the archive's ``extra/asr.json``; :class:`TorchScriptRecognizer`
loads it.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from asr.checkpoint import REQUIRED, CheckpointError, load_checkpoint, save_checkpoint
from asr.features import FeatureConfig, LogMel
from asr.models import model_config
from asr.recognizer import Recognizer, Timing
from asr.subword import vocabulary_from_state, vocabulary_state
from asr.text import Vocabulary
from asr.utils import HelpFormatter, UserError, atomic_open, run_cli

FORMAT = "asr-export/1"
METADATA_KEY = "asr"
EXPORT_FORMATS = ("onnx", "torchscript", "state")


class _TracedRecognizer(nn.Module):
    """Waveforms -> log-probs, with the model's traceable form (its ``for_export()``)."""

    def __init__(self, rec: Recognizer):
        super().__init__()
        self.features = rec.features
        self.model = rec.model.for_export()

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frames = self.features(waves, lengths)
        return self.model(feats, frames)


def metadata(rec: Recognizer) -> dict:
    """What an exported file needs to describe itself."""
    return {"format": FORMAT, "feature_config": dataclasses.asdict(rec.feature_cfg),
            "model_config": dataclasses.asdict(rec.model_cfg), **_vocab_meta(rec.vocab),
            "feature_mean": rec.features.mean.tolist(), "feature_std": rec.features.std.tolist()}


def _vocab_meta(vocab: Vocabulary) -> dict:
    """The vocabulary's checkpoint keys as JSON: a subword model's bytes as base64."""
    meta = vocabulary_state(vocab)
    if "subword_model" in meta:
        meta["subword_model"] = base64.b64encode(vocab.model).decode("ascii")
    return meta


def _vocab_from_meta(meta: dict) -> Vocabulary:
    """The vocabulary :func:`_vocab_meta` wrote (``ValueError`` when it cannot be rebuilt)."""
    if isinstance(meta.get("subword_model"), str):
        meta = {**meta, "subword_model": base64.b64decode(meta["subword_model"])}
    return vocabulary_from_state(meta)


def export_onnx(rec: Recognizer, out: str | os.PathLike, opset: int = 17) -> None:
    """Write the acoustic model of ``rec`` as ONNX with metadata, atomically.

    Inputs ``features`` ``(batch, frames, n_mels)`` float32 and ``lengths`` ``(batch,)``
    int64; outputs ``log_probs`` ``(batch, steps, vocab)`` and ``out_lengths``.
    """
    import onnx

    # The TorchScript-based exporter (dynamo=False) needs only onnx. With torch 2.14.1 the
    # torch.export-based one (dynamo=True, needs onnxscript) also exports the birnn model's
    # traceable form with dynamic axes and matches it to 5e-7, but fails on its own frame
    # stacking.
    rec = rec.cpu().eval()
    model = rec.model.for_export().eval()  # the model's traceable form (asr.models)
    feats = torch.randn(2, 37, rec.feature_cfg.n_mels)
    lengths = torch.tensor([37, 20])
    out = Path(out)
    tmp = out.with_name(f".{out.name}.export.tmp")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (feats, lengths), str(tmp), input_names=["features", "lengths"],
                              output_names=["log_probs", "out_lengths"], opset_version=opset, dynamo=False,
                              dynamic_axes={"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"},
                                            "log_probs": {0: "batch", 1: "steps"}, "out_lengths": {0: "batch"}})
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata(rec))
        proto.producer_name = "asr"
        with atomic_open(out, "wb") as f:
            f.write(proto.SerializeToString())
    finally:
        tmp.unlink(missing_ok=True)


def export_torchscript(rec: Recognizer, out: str | os.PathLike) -> None:
    """Trace ``rec`` (waveforms -> log-probs) to TorchScript with metadata, atomically."""
    rec = rec.cpu().eval()
    module = _TracedRecognizer(rec).eval()
    n = rec.feature_cfg.hop_length * 50 + 7
    waves, lengths = torch.randn(2, n), torch.tensor([n, n // 2])
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(module, (waves, lengths), check_trace=False)
    with atomic_open(out, "wb") as f, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, still the portable format
        torch.jit.save(traced, f, _extra_files={"asr.json": json.dumps(metadata(rec))})


def _parse_metadata(text: str, path) -> dict:
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: the export's asr metadata is not valid JSON ({e}); export the checkpoint "
                              "again with asr-export") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the export's asr metadata is not a JSON object; export it again")
    return meta


def _configs(meta: dict, name: str) -> tuple[FeatureConfig, object, Vocabulary]:
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{name}: not an asr export (metadata format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}); export a checkpoint with asr-export")
    try:
        return (FeatureConfig(**meta["feature_config"]), model_config(meta["model_config"]),
                _vocab_from_meta(meta))
    except (KeyError, TypeError, ValueError, UserError) as e:
        raise CheckpointError(f"{name}: export metadata does not match this version of asr ({e})") from None


class _ExportedRecognizer(Timing):
    """What transcription needs of a recogniser: ``sample_rate``, ``frame_shift``,
    ``vocab``, ``feature_cfg``, ``features`` (a :class:`asr.features.LogMel`) and
    ``__call__(waves (batch, samples), lengths (batch,)) -> (log_probs (batch, steps, vocab), steps (batch,))``.

    The exported graph runs padded batches (packing does not trace), so padding would leak
    into the backward direction of a shorter utterance; ``__call__`` therefore runs each
    utterance on its own, and its output, like PyTorch's, does not depend on the batch.
    """

    def __init__(self, meta: dict, name: str):
        self.feature_cfg, self.model_cfg, self.vocab = _configs(meta, name)
        self.features = LogMel(self.feature_cfg)
        self.features.mean.copy_(torch.tensor(meta["feature_mean"]))
        self.features.std.copy_(torch.tensor(meta["feature_std"]))

    def to(self, device) -> "_ExportedRecognizer":
        return self

    def eval(self) -> "_ExportedRecognizer":
        return self

    @torch.no_grad()
    def __call__(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [self._run(waves[i:i + 1, :n].float(), lengths[i:i + 1]) for i, n in enumerate(lengths.tolist())]
        steps = torch.cat([n for _, n in outs])
        log_probs = pad_sequence([lp[0, :n] for (lp, _), n in zip(outs, steps.tolist())], batch_first=True)
        return log_probs, steps  # (batch, steps, vocab), (batch,)

    def _run(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One utterance: ``waves (1, samples)`` -> ``(log_probs (1, steps, vocab), steps (1,))``."""
        raise NotImplementedError


def _check_file(path: str | os.PathLike, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} not found; write one with asr-export --model CKPT --format ...")
    return path


class OnnxRecognizer(_ExportedRecognizer):
    """Runs a ``.onnx`` file from :func:`export_onnx` with onnxruntime (features in torch)."""

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu"):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("running an ONNX model needs onnxruntime: pip install 'asr[export]'") from None
        path = _check_file(path, "ONNX model")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = torch.get_num_threads()
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if torch.device(device).type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise CheckpointError(f"{path}: not a readable ONNX model ({str(e).splitlines()[0][:160]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if meta is None:
            raise CheckpointError(f"{path}: ONNX model without asr metadata; export it with asr-export")
        super().__init__(_parse_metadata(meta, path), str(path))

    def _run(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, frames = self.features(waves.cpu(), lengths.cpu())  # (batch, frames, n_mels)
        log_probs, steps = self.session.run(None, {"features": feats.numpy(), "lengths": frames.long().numpy()})
        return torch.from_numpy(log_probs), torch.from_numpy(steps)


class TorchScriptRecognizer(_ExportedRecognizer):
    """Runs a TorchScript file from :func:`export_torchscript`."""

    def __init__(self, path: str | os.PathLike, device: torch.device | str = "cpu"):
        path = _check_file(path, "TorchScript model")
        extra = {"asr.json": ""}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        except Exception as e:  # torch raises many types for bad archives
            raise CheckpointError(f"{path}: not a readable TorchScript model ({str(e).splitlines()[0][:160]})") from None
        if not extra["asr.json"]:
            raise CheckpointError(f"{path}: TorchScript model without asr metadata; export it with asr-export")
        super().__init__(_parse_metadata(extra["asr.json"], path), str(path))
        self.features = self.features.to(device)

    def _run(self, waves: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.module(waves, lengths)


def model_card(state: dict, reports: dict[str, str | os.PathLike] | None = None) -> dict:
    """A small description of a trained model from its training checkpoint: training and
    dev data, epochs and steps trained, best dev WER, the configuration, and the summary of
    each ``asr-evaluate --report`` given (``{"test": "exp/x/test_report.json"}``)."""
    config, progress = state.get("config") or {}, state.get("progress") or {}
    card = {"training_data": (config.get("data") or {}).get("train_manifest"),
            "dev_data": (config.get("data") or {}).get("dev_manifest"),
            "epochs": progress.get("epoch"), "steps": progress.get("step"),
            "best_dev_wer": progress.get("best_wer") if progress.get("best_wer", float("inf")) < float("inf") else None,
            "parameters": sum(p.numel() for p in Recognizer.from_checkpoint(state).parameters()),
            "config": config}
    for name, path in (reports or {}).items():
        try:
            card[f"{name}_summary"] = json.loads(Path(path).read_text(encoding="utf-8"))["summary"]
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"--report {name}={path}: not an asr-evaluate report ({e}); "
                            "write one with asr-evaluate --report") from None
    return card


def export_state(checkpoint: str | os.PathLike, out: str | os.PathLike,
                 reports: dict[str, str | os.PathLike] | None = None) -> dict:
    """Release weights: ``out`` holds what transcription needs (configs, vocabulary,
    weights) and a ``model_card`` (:func:`model_card`), not the optimizer, scheduler or RNG
    state; ``out`` with ``.json`` is the card for people. Returns the card."""
    state = load_checkpoint(checkpoint)
    card = model_card(state, reports)
    save_checkpoint(out, {k: state[k] for k in REQUIRED if k != "format"} | {"model_card": card})
    with atomic_open(Path(out).with_suffix(".json")) as f:
        json.dump(card, f, indent=1)
    return card


def _parse_reports(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--report {item}: expected NAME=REPORT.json, e.g. test=exp/demo/test_report.json")
        out[name] = path
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="asr-export", description="Export a checkpoint to ONNX or TorchScript.")
    p.add_argument("out", help="output file (e.g. model.onnx or model.ts)")
    p.add_argument("--model", required=True, help="checkpoint written by asr-train (e.g. exp/demo/best.pt)")
    p.add_argument("--format", choices=EXPORT_FORMATS,
                   help="onnx: acoustic model for onnxruntime; torchscript: the whole recogniser; state: "
                        "release weights (no optimizer state) with a model card, also written as OUT.json "
                        "(default: from OUT's suffix: .onnx, .pt for state, torchscript otherwise)")
    p.add_argument("--report", action="append", default=[], metavar="NAME=REPORT.json",
                   help="with --format state: put this asr-evaluate --report summary in the model card "
                        "(repeatable, e.g. test=exp/demo/test_report.json)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    suffix = Path(args.out).suffix.lower()
    fmt = args.format or {".onnx": "onnx", ".pt": "state"}.get(suffix, "torchscript")
    if fmt == "state":
        card = export_state(args.model, args.out, _parse_reports(args.report))
        wer = card["best_dev_wer"]
        print(f"wrote {args.out} (weights and model card, {Path(args.out).stat().st_size / 2**20:.1f} MiB) and "
              f"{Path(args.out).with_suffix('.json')}: {card['epochs']} epochs, best dev WER "
              f"{'-' if wer is None else f'{100 * wer:.2f}%'}")
        return 0
    rec = Recognizer.from_checkpoint(args.model, "cpu")
    try:
        if fmt == "onnx":
            try:
                import onnx  # noqa: F401
            except ImportError:
                raise UserError("ONNX export needs onnx and onnxruntime: pip install 'asr[export]'") from None
            export_onnx(rec, args.out, args.opset)
            exported = OnnxRecognizer(args.out)
        else:
            export_torchscript(rec, args.out)
            exported = TorchScriptRecognizer(args.out)
    except OSError as e:
        raise UserError(f"{args.out}: cannot write ({e.strerror or e}); check the path") from None
    n = rec.sample_rate * 3
    waves = torch.randn(2, n) * 0.1
    lengths = torch.tensor([n, n * 2 // 3])
    with torch.no_grad():
        ref, ref_len = rec(waves, lengths)
        got, got_len = exported(waves, lengths)
    mask = torch.arange(ref.shape[1])[None, :, None] < ref_len[:, None, None]
    diff = ((ref - got).abs() * mask).max().item()
    print(f"wrote {args.out} ({fmt}, {Path(args.out).stat().st_size / 2**20:.1f} MiB); "
          f"max |log-prob difference| vs PyTorch on random audio: {diff:.2e}")
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
