"""Transcribing audio files with a checkpoint. CLI: ``asr-transcribe``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from asr.audio import AudioError, load_audio
from asr.decoding import Decoder, GreedyDecoder, Hypothesis
from asr.recognizer import Recognizer
from asr.utils import autocast_dtype, resolve_device, run_cli


@dataclass
class Transcript:
    audio: str
    text: str
    duration: float
    nbest: list[Hypothesis]


@torch.no_grad()
def transcribe_waves(recognizer: Recognizer, waves: Sequence[torch.Tensor], decoder: Decoder | None = None,
                     device: torch.device | str = "cpu", max_batch_seconds: float = 300.0,
                     precision: str = "auto") -> list[list[Hypothesis]]:
    """Decode mono waveforms at the recogniser's rate, batched by length.

    Returns one N-best list per waveform, in the order given.
    """
    device = torch.device(device)
    decoder = decoder or GreedyDecoder(recognizer.vocab)
    dtype = autocast_dtype(device, precision)
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    max_samples = max_batch_seconds * recognizer.sample_rate
    results: list[list[Hypothesis]] = [[] for _ in waves]
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and len(waves[order[end]]) * (end - start + 1) <= max_samples:
            end += 1
        idx = order[start:end]
        batch = torch.nn.utils.rnn.pad_sequence([waves[i] for i in idx], batch_first=True).to(device)
        lengths = torch.tensor([len(waves[i]) for i in idx], device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            log_probs, out_lengths = recognizer(batch, lengths)  # (batch, steps, vocab)
        for i, nbest in zip(idx, decoder.decode(log_probs.float(), out_lengths)):
            results[i] = nbest
        start = end
    return results


def transcribe_files(recognizer: Recognizer, paths: Iterable[str], decoder: Decoder | None = None,
                     device: torch.device | str = "cpu", chunk: int = 32, on_error=None):
    """Yield a :class:`Transcript` per readable file, in order; unreadable files go to
    ``on_error(path, AudioError)`` (raised if not given)."""
    paths = list(paths)
    for start in range(0, len(paths), chunk):
        names, waves = [], []
        for p in paths[start:start + chunk]:
            try:
                waves.append(load_audio(p, recognizer.sample_rate))
                names.append(p)
            except AudioError as e:
                if on_error is None:
                    raise
                on_error(p, e)
        for name, wave, nbest in zip(names, waves, transcribe_waves(recognizer, waves, decoder, device)):
            yield Transcript(name, nbest[0].text, len(wave) / recognizer.sample_rate, nbest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr-transcribe", description="Transcribe audio files with a checkpoint.")
    p.add_argument("audio", nargs="+", help="audio files (WAV, FLAC, Ogg/Opus, MP3; any rate), or - for stdin")
    p.add_argument("--model", required=True, help="checkpoint written by asr-train (e.g. exp/demo/best.pt)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--format", choices=("txt", "json"), default="txt",
                   help="txt: one transcript a line (path<TAB>text for several files); json: one object a line")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    device = resolve_device(args.device)
    recognizer = Recognizer.from_checkpoint(args.model, device)
    failures = 0

    def on_error(path: str, err: AudioError) -> None:
        nonlocal failures
        failures += 1
        print(f"error: {err}", file=sys.stderr)

    several = len(args.audio) > 1
    for t in transcribe_files(recognizer, args.audio, device=device, on_error=on_error):
        if args.format == "json":
            print(json.dumps({"audio": t.audio, "text": t.text, "duration": round(t.duration, 3)},
                             ensure_ascii=False))
        else:
            print(f"{t.audio}\t{t.text}" if several else t.text)
        sys.stdout.flush()
    return 1 if failures else 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
