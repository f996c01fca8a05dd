"""Scoring a model on a manifest: hypotheses, aligned errors, WER/CER. CLI: ``asr-evaluate``."""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from asr.audio import AudioError, audio_info
from asr.data import (AudioDataset, Batch, DurationBatchSampler, Utterance, collate, manifest_lines, read_manifest,
                      stream_manifest)
from asr.decoding import Decoder, GreedyDecoder, add_decoder_arguments, decoder_from_args
from asr.metrics import ErrorRates, error_rates, word_edits
from asr.recognizer import FeatureTransform, Recognizer
from asr.text import DEFAULT_CHARS, NUMBERS, NUMBERS_HELP, Vocabulary, describe_dropped, vocab_from_options
from asr.utils import (HelpFormatter, UserError, atomic_open, autocast_dtype, check_writable, resolve_device,
                       run_cli)


def batch_loader(utterances: Sequence[Utterance], recognizer: Recognizer, max_batch_seconds: float = 200.0,
                 num_workers: int = 0) -> DataLoader:
    """Length-sorted, unshuffled batches of ``utterances``."""
    ds = AudioDataset(utterances, recognizer.vocab, recognizer.sample_rate)
    sampler = DurationBatchSampler([u.duration for u in utterances], max_batch_seconds, shuffle=False)
    return DataLoader(ds, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers)


@torch.no_grad()
def iter_outputs(recognizer: Recognizer, loader: DataLoader, device: torch.device, precision: str = "auto",
                 transform: FeatureTransform | None = None) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
    """Run the model over ``loader``: yields ``(batch, log_probs (batch, steps, vocab), lengths)``;
    ``transform`` as in :meth:`Recognizer.forward`."""
    recognizer.eval()
    dtype = autocast_dtype(device, precision)
    for batch in loader:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            log_probs, lengths = recognizer(batch.waves.to(device), batch.wave_lengths.to(device), transform)
        yield batch, log_probs.float(), lengths


def utterance_log_probs(recognizer: Recognizer, utterances: Sequence[Utterance],
                        device: torch.device = torch.device("cpu"), max_batch_seconds: float = 200.0,
                        precision: str = "auto", transform: FeatureTransform | None = None) -> list[torch.Tensor]:
    """Each utterance's log-probabilities ``(steps, vocab)``, float32 on the CPU, in the order of
    ``utterances`` (the batches run length-sorted). For decoders tuned or compared on one
    pass of the model (``asr-lm tune``, ``bench/decode.py``, ``recipes/warp.py``)."""
    out: dict[int, torch.Tensor] = {}
    loader = batch_loader(utterances, recognizer, max_batch_seconds)
    for batch, log_probs, lengths in iter_outputs(recognizer, loader, device, precision, transform):
        for b, i in enumerate(batch.indices):
            out[i] = log_probs[b, :lengths[b]].cpu().contiguous()
    return [out[i] for i in range(len(utterances))]


@dataclass
class Evaluation:
    """``speakers`` holds each utterance's ``speaker`` manifest key (None where it has none)."""

    ids: list[str]
    references: list[str]
    hypotheses: list[str]
    loss: float
    rates: ErrorRates
    speakers: list[str | None] = field(default_factory=list)

    def per_speaker(self) -> dict[str, ErrorRates]:
        """Error rates of each speaker's utterances, by speaker name (empty without speakers)."""
        groups: dict[str, list[int]] = {}
        for i, spk in enumerate(self.speakers):
            if spk is not None:
                groups.setdefault(str(spk), []).append(i)
        return {spk: error_rates([self.references[i] for i in idx], [self.hypotheses[i] for i in idx])
                for spk, idx in sorted(groups.items())}

    def report(self) -> dict:
        """Summary, per-speaker error rates (when the manifest names speakers) and
        per-utterance reference, hypothesis and aligned errors."""
        utts = []
        for uid, ref, hyp in zip(self.ids, self.references, self.hypotheses):
            ops = word_edits(ref, hyp)
            errors = [o for o in ops if o["op"] != "equal"]
            counts = {k: sum(o["op"] == k for o in ops) for k in ("substitute", "delete", "insert")}
            utts.append({"id": uid, "reference": ref, "hypothesis": hyp, "substitutions": counts["substitute"],
                         "deletions": counts["delete"], "insertions": counts["insert"], "errors": errors})
        speakers = {spk: r.__dict__ for spk, r in self.per_speaker().items()}
        return {"summary": {**self.rates.__dict__, "loss": self.loss}, **({"speakers": speakers} if speakers else {}),
                "utterances": utts}


def evaluate(recognizer: Recognizer, utterances: Sequence[Utterance], decoder: Decoder | None = None,
             device: torch.device | str = "cpu", precision: str = "auto", max_batch_seconds: float = 200.0,
             num_workers: int = 0, progress: bool = False) -> Evaluation:
    """Decode every utterance and score it against its normalised transcript (``progress``:
    a tqdm bar of utterances on stderr)."""
    device = torch.device(device)
    decoder = decoder or GreedyDecoder(recognizer.vocab)
    ctc = torch.nn.CTCLoss(blank=recognizer.vocab.blank, reduction="none", zero_infinity=True)
    hyps: dict[int, str] = {}
    loss_sum = 0.0
    loader = batch_loader(utterances, recognizer, max_batch_seconds, num_workers)
    bar = tqdm(total=len(utterances), unit="utt", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    for batch, log_probs, lengths in iter_outputs(recognizer, loader, device, precision):
        bar.update(len(batch.indices))
        losses = ctc(log_probs.transpose(0, 1), batch.targets.to(device), lengths, batch.target_lengths.to(device))
        loss_sum += (losses / batch.target_lengths.to(device).clamp_min(1)).sum().item()  # as training's "mean"
        for i, nbest in zip(batch.indices, decoder.decode(log_probs, lengths)):
            hyps[i] = nbest[0].text if nbest else ""
    bar.close()
    refs = [recognizer.vocab.normalize(u.text) for u in utterances]
    hyp_list = [hyps[i] for i in range(len(utterances))]
    return Evaluation([u.id for u in utterances], refs, hyp_list, loss_sum / max(len(utterances), 1),
                      error_rates(refs, hyp_list), [u.extra.get("speaker") for u in utterances])


def _warn_about_references(manifest, utterances: list[Utterance], vocab: Vocabulary) -> None:
    """Characters the references lose to the vocabulary, and references left empty, are
    counted and reported (they change the WER)."""
    dropped = vocab.dropped_characters(u.text for u in utterances)
    if dropped:
        warnings.warn(f"{manifest}: references: {describe_dropped(dropped)}", stacklevel=2)
    empty = [u.id for u in utterances if not vocab.normalize(u.text)]
    if empty:
        warnings.warn(f"{manifest}: {len(empty)} reference(s) are empty after normalisation (e.g. {empty[0]!r}); "
                      "they count as empty references", stacklevel=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="asr-evaluate", description="WER/CER of a checkpoint on a manifest.")
    p.add_argument("--model", help="checkpoint written by asr-train (e.g. exp/demo/best.pt)")
    p.add_argument("--manifest", required=True, help="JSON-lines manifest with reference texts")
    p.add_argument("--report", help="write per-utterance hypotheses and aligned errors to this JSON file")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--batch-seconds", type=float, default=200.0,
                   help="audio seconds per batch, padding included (memory only: results do not depend on it)")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar on stderr; auto: when stderr is a terminal")
    p.add_argument("--hyp-key", metavar="KEY",
                   help="score the hypotheses already in the manifest under KEY (e.g. pred_text from "
                        "asr-transcribe --output-manifest) against its text; no model, no audio")
    p.add_argument("--chars", default=DEFAULT_CHARS,
                   help="with --hyp-key: the vocabulary both texts are normalised with (the model's)")
    p.add_argument("--numbers", choices=NUMBERS, default="auto", help=f"with --hyp-key: {NUMBERS_HELP}")
    p.add_argument("--skip-unreadable", action="store_true",
                   help="score the utterances whose audio can be read and report how many were skipped "
                        "(default: stop before any work when one cannot be read)")
    add_decoder_arguments(p)
    return p


def readable(manifest, utterances: list[Utterance], skip: bool) -> list[Utterance]:
    """The utterances whose audio header can be read. One that cannot is an error naming
    ``manifest:line`` (before any work), or with ``skip`` a warning, and is left out."""
    lines = [n for n, _ in manifest_lines(manifest)]
    kept, bad = [], []
    for lineno, u in zip(lines, utterances):
        try:
            audio_info(u.audio_filepath)
            kept.append(u)
        except AudioError as e:
            bad.append(f"{manifest}:{lineno}: {e}")
    if bad and not skip:
        raise UserError(f"{bad[0]} ({len(bad)} of {len(utterances)} utterances unreadable); fix or remove them, "
                        "or pass --skip-unreadable to score the rest")
    for message in bad:
        warnings.warn(f"{message}; skipped", stacklevel=2)
    return kept


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.batch_seconds > 0:
        raise UserError(f"--batch-seconds {args.batch_seconds}: expected a positive number of seconds")
    device = resolve_device(args.device)
    if args.report:
        check_writable(args.report, "--report")  # before the evaluation, not after it
    with stream_manifest(args.manifest) as manifest:  # a pipe (<(...), /dev/stdin) is read once, into a copy
        args.manifest = manifest
        return _main(args, device)


def _main(args, device) -> int:
    if args.hyp_key:
        result = score_hypotheses(args.manifest, args.hyp_key, vocab_from_options(args.chars, args.numbers))
        everything = utterances = result.ids
    elif not args.model:
        raise UserError("--model is needed (or --hyp-key KEY to score hypotheses already in the manifest)")
    else:
        everything, utterances, result = _evaluate_model(args, device)
    if args.report:
        with atomic_open(args.report) as f:
            json.dump(result.report(), f, indent=1, ensure_ascii=False)
    skipped = len(everything) - len(utterances)
    print(result.rates.summary() + (f", {skipped} unreadable skipped" if skipped else ""))
    return 0


def score_hypotheses(manifest, key: str, vocab: Vocabulary) -> Evaluation:
    """WER/CER of hypotheses already in a manifest (``key``, e.g. ``pred_text`` as
    ``asr-transcribe --output-manifest`` writes) against its ``text``, both normalised
    with ``vocab``; no model, no audio."""
    utterances = read_manifest(manifest, check_files=False)
    lines = [n for n, _ in manifest_lines(manifest)]
    missing = [n for n, u in zip(lines, utterances) if not isinstance(u.extra.get(key), str)]
    if missing:
        raise UserError(f"{manifest}:{missing[0]}: no {key!r} text ({len(missing)} lines lack it); write the "
                        f"hypotheses with asr-transcribe --output-manifest, or name the key with --hyp-key")
    _warn_about_references(manifest, utterances, vocab)
    refs = [vocab.normalize(u.text) for u in utterances]
    hyps = [vocab.normalize(u.extra[key]) for u in utterances]
    return Evaluation([u.id for u in utterances], refs, hyps, float("nan"), error_rates(refs, hyps),
                      [u.extra.get("speaker") for u in utterances])


def _evaluate_model(args, device) -> tuple[list[Utterance], list[Utterance], Evaluation]:
    everything = read_manifest(args.manifest)  # cheap: fail before loading the model
    utterances = readable(args.manifest, everything, args.skip_unreadable)
    if not utterances:
        raise UserError(f"{args.manifest}: no utterance has readable audio; nothing to score")
    recognizer = Recognizer.from_checkpoint(args.model, device)
    _warn_about_references(args.manifest, utterances, recognizer.vocab)
    decoder = decoder_from_args(args, recognizer.vocab)
    show = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    result = evaluate(recognizer, utterances, decoder, device=device, max_batch_seconds=args.batch_seconds,
                      progress=show)
    return everything, utterances, result


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
