"""Transcribing audio: files, directories, manifests and stdin, of any length. CLI: ``asr-transcribe``.

Every input is streamed (:meth:`asr.audio.AudioFile.blocks`) and cut into chunks of at
most ``chunk_seconds``, and at every pause of ``cut_pause`` seconds (:mod:`asr.segment`);
chunks from all inputs are batched by length and decoded; each chunk's words are timed
from the CTC alignment (:mod:`asr.align`) and stitched back into one :class:`Transcript`
per input, in input order. Memory depends on the chunk and batch sizes, not on the
recordings' lengths.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import warnings

# oneDNN (the CPU LSTM kernels) caches a compiled primitive per input shape, 1024 by
# default; chunks of a long recording come in many lengths, so the cache grew by about
# 4 MB per minute of audio. A small cache keeps memory flat; shapes rarely repeat anyway.
os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from asr.align import Word, align_words
from asr.audio import AudioError, find_audio_files, load_audio, open_audio
from asr.data import manifest_lines, read_manifest
from asr.decoding import Decoder, GreedyDecoder, Hypothesis, add_decoder_arguments, decoder_from_args
from asr.formats import FORMATS, SINGLE_INPUT, Transcript, render
from asr.segment import Chunk, split_chunks
from asr.utils import (HelpFormatter, UserError, atomic_open, autocast_dtype, check_writable, escape_controls,
                       resolve_device, run_cli)

MANIFEST_SUFFIXES = (".json", ".jsonl")


@dataclass
class Input:
    """An audio input after expanding directories and manifests. ``name`` is what outputs
    call it, ``path`` what is opened, ``rel`` its name under ``--output-dir``; ``error``
    is set for an argument that yields no audio (a directory without audio files, a broken
    manifest) and is reported in its place."""

    name: str
    path: str
    rel: str
    error: UserError | None = None
    wave: torch.Tensor | None = None  # audio already in memory: (samples,) at the recogniser's rate
    row: dict | None = None  # the manifest line it came from, all keys kept (--output-manifest)
    segment: tuple[float, float] | None = None  # (offset, duration) in seconds: a piece of a longer recording


def expand_inputs(items: Sequence[str]) -> list[Input]:
    """Files stay files; directories become their audio files (recursively, by
    extension); ``.json``/``.jsonl`` files are NeMo manifests; ``-`` is standard input.
    Output names are made unique."""
    out: list[Input] = []
    for item in items:
        p = Path(item)
        if item != "-" and p.is_dir():
            files = find_audio_files(p)
            if not files:
                out.append(Input(item, item, "", AudioError(
                    f"{item}: directory contains no audio files (looked for *.wav, *.flac, *.ogg, *.opus, "
                    "*.mp3, ... recursively); pass audio files or another directory")))
            out += [Input(escape_controls(str(f)), str(f), str(f.relative_to(p))) for f in files]
        elif p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file():
            try:
                utts = read_manifest(p, check_files=False)
                rows = [json.loads(line) for _, line in manifest_lines(p)]
            except UserError as e:
                out.append(Input(item, item, "", e))
                continue
            out += [_manifest_input(u, row) for u, row in zip(utts, rows)]
        else:
            out.append(Input(escape_controls(item), item, "stdin" if item == "-" else p.name))
    seen: set[str] = set()
    for inp in out:
        stem, suffix = os.path.splitext(inp.rel)
        rel, n = inp.rel, 1
        while rel.lower() in seen:
            n += 1
            rel = f"{stem}-{n}{suffix}"
        seen.add(rel.lower())
        inp.rel = rel
    return out


def load_recognizer(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """A :class:`asr.recognizer.Recognizer` from a checkpoint; for a file written by
    ``asr-export``, an :class:`asr.export.OnnxRecognizer` (``.onnx``) or
    :class:`asr.export.TorchScriptRecognizer` (``.ts``, ``.torchscript``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        from asr.export import OnnxRecognizer

        return OnnxRecognizer(path, device)
    if suffix in (".ts", ".torchscript"):
        from asr.export import TorchScriptRecognizer

        return TorchScriptRecognizer(path, device)
    from asr.recognizer import Recognizer

    return Recognizer.from_checkpoint(path, device)


def _pad_batch(waves: Sequence[torch.Tensor], min_samples: int) -> torch.Tensor:
    batch = torch.nn.utils.rnn.pad_sequence(list(waves), batch_first=True)  # (batch, samples)
    if batch.shape[1] < min_samples:  # the centred STFT needs more than n_fft / 2 samples
        batch = torch.nn.functional.pad(batch, (0, min_samples - batch.shape[1]))
    return batch


@torch.no_grad()
def _run(recognizer, waves: Sequence[torch.Tensor], decoder: Decoder, device: torch.device,
         max_batch_seconds: float, precision: str) -> Iterator[tuple[int, list[Hypothesis], torch.Tensor]]:
    """Batches by length; yields ``(index, nbest, log_probs (frames, vocab) on the CPU)``."""
    dtype = autocast_dtype(device, precision)
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    max_samples = max_batch_seconds * recognizer.sample_rate
    min_samples = recognizer.feature_cfg.fft_size
    start = 0
    while start < len(order):
        end = start + 1
        while end < len(order) and len(waves[order[end]]) * (end - start + 1) <= max_samples:
            end += 1
        idx = order[start:end]
        batch = _pad_batch([waves[i] for i in idx], min_samples).to(device)
        lengths = torch.tensor([len(waves[i]) for i in idx], device=device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            log_probs, out_lengths = recognizer(batch, lengths)  # (batch, steps, vocab)
        log_probs = log_probs.float()
        nbests = decoder.decode(log_probs, out_lengths)
        log_probs, out_lengths = log_probs.cpu(), out_lengths.cpu()
        for j, i in enumerate(idx):
            yield i, nbests[j], log_probs[j, :out_lengths[j]]
        start = end


def transcribe_waves(recognizer, waves: Sequence[torch.Tensor], decoder: Decoder | None = None,
                     device: torch.device | str = "cpu", max_batch_seconds: float = 300.0,
                     precision: str = "auto") -> list[list[Hypothesis]]:
    """Decode mono waveforms ``(samples,)`` at the recogniser's rate, batched by length.

    Returns one N-best list per waveform, in the order given.
    """
    decoder = decoder or GreedyDecoder(recognizer.vocab)
    results: list[list[Hypothesis]] = [[] for _ in waves]
    for i, nbest, _ in _run(recognizer, waves, decoder, torch.device(device), max_batch_seconds, precision):
        results[i] = nbest
    return results


@dataclass
class _Pending:
    """An input being transcribed: chunk results arrive in any order."""

    item: Input
    duration: float = 0.0
    total: int | None = None  # chunks, once the input has been read to its end
    done: dict[int, tuple[Chunk, list[Hypothesis], list[Word], torch.Tensor | None]] = field(default_factory=dict)
    error: UserError | None = None
    head: list[torch.Tensor] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.error is not None or (self.total is not None and len(self.done) == self.total)


def transcribe_files(recognizer, paths: Iterable[str | Input], decoder: Decoder | None = None,
                     device: torch.device | str = "cpu", on_error: Callable[[str, UserError], None] | None = None,
                     chunk_seconds: float = 20.0, overlap_seconds: float | None = None,
                     max_batch_seconds: float = 120.0,
                     precision: str = "auto", plot_seconds: float = 0.0,
                     cut_pause: float | None = 0.3) -> Iterator[Transcript]:
    """Transcribe audio inputs of any length; yield a :class:`Transcript` per usable input, in order.

    Parameters
    ----------
    recognizer
        A :class:`asr.recognizer.Recognizer` (or :class:`asr.export.OnnxRecognizer`).
    paths : iterable of str or Input
        Audio files, or ``"-"`` for standard input (see :func:`expand_inputs` for
        directories and manifests).
    decoder : Decoder, optional
        Greedy by default.
    on_error : callable, optional
        ``on_error(name, error)`` for an input that cannot be transcribed, called in its
        place in the order; without it the error is raised.
    chunk_seconds, overlap_seconds
        Longest piece decoded at once, and the overlap of pieces cut where there is no pause
        (:func:`asr.segment.split_chunks`; default :func:`overlap_for`, which fits any
        ``chunk_seconds``).
    cut_pause : float or None
        Every pause of at least this many seconds ends a piece (None: only where
        ``chunk_seconds`` forces a cut).
    max_batch_seconds : float
        Padded audio per batch; chunks waiting for a batch are at most this long in total.
    plot_seconds : float
        Keep the posteriors of the first this many seconds in ``Transcript.posteriors``.
    """
    device = torch.device(device)
    decoder = decoder or GreedyDecoder(recognizer.vocab)
    rate = recognizer.sample_rate
    overlap_seconds = overlap_for(chunk_seconds) if overlap_seconds is None else overlap_seconds
    if not 0 <= overlap_seconds < chunk_seconds / 2:  # checked before any work, not at the first long input
        raise ValueError(f"overlap_seconds={overlap_seconds} must be below half of chunk_seconds={chunk_seconds}")
    queue: deque[_Pending] = deque()
    waiting: list[tuple[_Pending, Chunk]] = []
    waiting_samples = 0

    def run_waiting() -> None:
        nonlocal waiting, waiting_samples
        waves = [c.wave for _, c in waiting]
        for i, nbest, log_probs in _run(recognizer, waves, decoder, device, max_batch_seconds, precision):
            pending, chunk = waiting[i]
            words, kept = _chunk_words(recognizer, chunk, nbest, log_probs, plot_seconds)
            chunk.wave = torch.zeros(0)  # release the audio
            pending.done[chunk.index] = (chunk, nbest, words, kept)
        waiting, waiting_samples = [], 0

    for item in paths:
        item = item if isinstance(item, Input) else Input(str(item), str(item), Path(str(item)).name)
        pending = _Pending(item, error=item.error)
        queue.append(pending)
        if pending.error is None:
            try:
                with _audio_blocks(item, min(chunk_seconds, 60.0), rate) as (pending.duration, blocks):
                    count = 0
                    blocks = _keep_head(blocks, pending.head, int(plot_seconds * rate))
                    for chunk in split_chunks(blocks, rate, chunk_seconds, overlap_seconds, cut_pause=cut_pause):
                        waiting.append((pending, chunk))
                        waiting_samples += len(chunk.wave)
                        count += 1
                        if waiting_samples >= max_batch_seconds * rate:
                            run_waiting()
                            yield from _finished(queue, on_error)
                    pending.total = count
            except AudioError as e:
                pending.error = e
                waiting = [(p, c) for p, c in waiting if p is not pending]
                waiting_samples = sum(len(c.wave) for _, c in waiting)
        yield from _finished(queue, on_error)
    if waiting:
        run_waiting()
    yield from _finished(queue, on_error)


def _manifest_input(u, row: dict) -> Input:
    if u.offset is None:
        return Input(escape_controls(u.audio_filepath), u.audio_filepath, Path(u.audio_filepath).name, row=row)
    name = f"{escape_controls(u.audio_filepath)}:{u.offset:.2f}-{u.offset + u.duration:.2f}"
    return Input(name, u.audio_filepath, f"{u.id}{Path(u.audio_filepath).suffix}", row=row,
                 segment=(u.offset, u.duration))


def _chunk_words(recognizer, chunk: Chunk, nbest: list, log_probs: torch.Tensor, plot_seconds: float):
    """The words of one decoded chunk that it keeps (the overlap's other half belongs to its
    neighbour), timed in the recording; and its posteriors when they are to be plotted."""
    offset = chunk.start / recognizer.sample_rate
    words = align_words(log_probs, nbest[0].tokens or recognizer.vocab.encode(nbest[0].text),
                        recognizer.vocab, recognizer.frame_shift, offset)
    words = [w for w in words if chunk.keeps(w.start, w.end)]
    kept = None
    if offset < plot_seconds:
        times = offset + (torch.arange(len(log_probs)) + 0.5) * recognizer.frame_shift
        keep = (times >= chunk.keep_from) & (times < min(chunk.keep_until, plot_seconds))
        kept = log_probs[keep]
    return words, kept


def _finished(queue: deque, on_error) -> Iterator[Transcript]:
    """Transcripts of the inputs at the head of ``queue`` whose chunks are all decoded, in order."""
    while queue and queue[0].finished:
        pending = queue.popleft()
        if pending.error is not None:
            if on_error is None:
                raise pending.error
            on_error(pending.item.name, pending.error)
        else:
            yield _stitch(pending)


@contextlib.contextmanager
def _audio_blocks(item: Input, seconds: float, rate: int) -> Iterator[tuple[float, Iterator[torch.Tensor]]]:
    """``(duration, blocks of about seconds)`` of an input: its file streamed, or its wave."""
    wave = item.wave if item.segment is None else load_audio(item.path, rate, *item.segment)
    if wave is not None:
        step = int(seconds * rate)
        yield len(wave) / rate, iter([wave[i:i + step] for i in range(0, len(wave), step)])
        return
    with open_audio(item.path) as audio:
        yield audio.duration, audio.blocks(seconds, rate)


def _keep_head(blocks: Iterator[torch.Tensor], head: list[torch.Tensor], samples: int) -> Iterator[torch.Tensor]:
    """Pass ``blocks`` through, appending the first ``samples`` of audio to ``head``."""
    for block in blocks:
        if samples > 0:
            head.append(block[:samples].clone())
            samples -= len(head[-1])
        yield block


def overlap_for(chunk_seconds: float) -> float:
    """The overlap of pieces cut where there is no pause: 1 s, less for short pieces (a
    quarter of them), so every ``chunk_seconds`` of at least 1 s works."""
    return min(1.0, chunk_seconds / 4)


def _stitch(pending: _Pending) -> Transcript:
    parts = [pending.done[i] for i in range(len(pending.done))]
    words = [w for _, _, ws, _ in parts for w in ws]
    if len(parts) == 1:
        nbest = parts[0][1]
        text = nbest[0].text.strip()
    else:
        text = " ".join(w.word for w in words)
        nbest = [Hypothesis(text, score=sum(p[1][0].score for p in parts))]
        if any(len(p[1]) > 1 for p in parts):
            warnings.warn(f"{pending.item.name}: transcribed in {len(parts)} pieces, so one hypothesis is given, "
                          "not an n-best list (n-best lists of pieces do not combine into one of the recording; "
                          "raise --chunk-seconds, or set --cut-pause 0, to decode it whole)", stacklevel=2)
    posts = [p[3] for p in parts if p[3] is not None and len(p[3])]
    posteriors = torch.cat(posts) if posts else None
    head = torch.cat(pending.head) if pending.head else None
    return Transcript(pending.item.name, text, pending.duration, nbest, words, posteriors, head)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        formatter_class=HelpFormatter, prog="asr-transcribe",
        description="Transcribe audio files, directories and manifests with a checkpoint.")
    p.add_argument("audio", nargs="+",
                   help="audio files (WAV, FLAC, Ogg/Opus, MP3; any rate and channels), directories (searched "
                        "recursively), JSON-lines manifests (.json/.jsonl), or - for stdin")
    p.add_argument("--model", required=True,
                   help="checkpoint written by asr-train (e.g. exp/demo/best.pt), or a .onnx / .ts file from asr-export")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--format", choices=(*FORMATS, "all"), default="txt",
                   help="txt: one transcript a line (path<TAB>text for several inputs); json: one object a line "
                        "with words, start, end, confidence; srt/vtt: subtitles; tsv: one word a line; ctm: NIST "
                        "CTM (word times and confidences); all: every format, into --output-dir (default: txt)")
    p.add_argument("--output-dir", help="write one file per input here (NAME.FORMAT) instead of printing")
    p.add_argument("--output-manifest", metavar="OUT.jsonl",
                   help="also write a JSON-lines manifest: each input's manifest row with every key kept and "
                        "pred_text added (NeMo's convention; score it with asr-evaluate --hyp-key pred_text)")
    p.add_argument("--plot", metavar="DIR",
                   help="write one PNG per input here: waveform, log-mel, CTC posteriors and the words")
    p.add_argument("--plot-seconds", type=float, default=120.0, help="seconds plotted from each input's start")
    p.add_argument("--chunk-seconds", type=float, default=20.0,
                   help="longest piece decoded at once, at least 1; longer audio is cut at pauses, or with "
                        "an overlap of min(1 s, a quarter of it) where there is none (default 20)")
    p.add_argument("--cut-pause", type=float, default=0.3,
                   help="also cut at every pause of at least this many seconds, so pieces are phrases like the "
                        "training utterances (default 0.3; 0: cut only where --chunk-seconds forces it)")
    p.add_argument("--batch-seconds", type=float, default=120.0,
                   help="audio seconds per batch, padding included (default 120; memory only: results do not "
                        "depend on it)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto (default): bf16/fp16 on CUDA, fp32 on the CPU")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar on stderr; auto: for more than 3 inputs when stderr is a terminal")
    add_decoder_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.chunk_seconds < 1 or args.batch_seconds < args.chunk_seconds:
        raise UserError(f"--chunk-seconds {args.chunk_seconds} and --batch-seconds {args.batch_seconds}: "
                        "need 1 <= chunk seconds <= batch seconds")
    if args.cut_pause < 0:
        raise UserError(f"--cut-pause {args.cut_pause}: expected seconds >= 0 (0 turns cutting at pauses off)")
    if args.audio.count("-") > 1:
        raise UserError("- (standard input) given more than once; it can be read only once")
    inputs = expand_inputs(args.audio)
    several = len(args.audio) > 1 or len(inputs) != 1 or inputs[0].path != args.audio[0]
    if args.format == "all" and not args.output_dir:
        raise UserError("--format all writes one file per format and input; add --output-dir DIR")
    if args.format in SINGLE_INPUT and several and not args.output_dir:
        raise UserError(f"--format {args.format} holds one input per file; with several inputs add "
                        "--output-dir DIR (one file per input)")
    if args.output_dir:
        check_writable(Path(args.output_dir) / "x", "--output-dir")
    if args.output_manifest:
        check_writable(args.output_manifest, "--output-manifest")
    device = resolve_device(args.device)
    recognizer = load_recognizer(args.model, device)
    decoder = decoder_from_args(args, recognizer.vocab)

    from tqdm import tqdm

    show = args.progress == "on" or (args.progress == "auto" and len(inputs) > 3 and sys.stderr.isatty())
    bar = tqdm(total=len(inputs), unit="file", file=sys.stderr, disable=not show, dynamic_ncols=True)
    failures = 0

    outcomes: list[Transcript | UserError] = []  # one per input, in order (for --output-manifest)

    def on_error(name: str, err: UserError) -> None:
        nonlocal failures
        failures += 1
        outcomes.append(err)
        bar.update(1)
        tqdm.write(f"error: {escape_controls(str(err))}", file=sys.stderr)

    by_name = {}
    for inp in inputs:
        by_name.setdefault(inp.name, inp)
    first = True
    for t in transcribe_files(recognizer, inputs, decoder, device, on_error, args.chunk_seconds,
                              max_batch_seconds=args.batch_seconds, precision=args.precision,
                              plot_seconds=args.plot_seconds if args.plot else 0.0, cut_pause=args.cut_pause or None):
        outcomes.append(t)
        rel = by_name[t.audio].rel
        if args.output_dir:
            for fmt in FORMATS if args.format == "all" else [args.format]:
                _write(Path(args.output_dir) / Path(rel).with_suffix(f".{fmt}"), render(t, fmt))
        else:
            bar.clear()
            sys.stdout.write(render(t, args.format, several, header=first))
            sys.stdout.flush()
        if args.plot:
            from asr.visualize import plot_transcript

            try:
                plot_transcript(recognizer, t, Path(args.plot) / Path(rel).with_suffix(".png"))
            except OSError as e:
                raise UserError(f"--plot {args.plot}: cannot write the plot for {t.audio} ({e.strerror or e})") from None
        first = False
        bar.update(1)
    bar.close()
    if args.output_manifest:
        write_output_manifest(args.output_manifest, inputs, outcomes)
    return 1 if failures else 0


def write_output_manifest(path: str | os.PathLike, inputs: Sequence[Input], outcomes: Sequence) -> None:
    """Every input's manifest row, all keys kept, with ``pred_text`` added (NeMo's
    ``transcribe_speech.py`` convention); an input that could not be transcribed gets an
    empty ``pred_text`` and its error in ``pred_error``. Inputs that were files, not
    manifest lines, get ``audio_filepath`` and ``duration``."""
    with atomic_open(path) as f:
        for inp, outcome in zip(inputs, outcomes):
            row = dict(inp.row) if inp.row is not None else {"audio_filepath": inp.path}
            if isinstance(outcome, Transcript):
                row.setdefault("duration", round(outcome.duration, 4))
                row["pred_text"] = outcome.text
            else:
                row["pred_text"], row["pred_error"] = "", str(outcome)
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write(path: Path, text: str) -> None:
    try:
        with atomic_open(path) as f:
            f.write(text)
    except OSError as e:
        raise UserError(f"{path}: cannot write the output ({e.strerror or e}); check --output-dir") from None


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
