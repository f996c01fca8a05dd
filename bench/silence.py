"""WER of a model on a manifest as it is, padded with silence or faint noise, and joined.

Prints one line per condition of :func:`asr.robustness.silence_robustness`, with its gap
to the plain WER beside the targets (padded within 2 points, joined within 3)::

    python bench/silence.py --model exp/demo/best.pt --manifest exp/demo/data/test.jsonl
"""

from __future__ import annotations

import argparse
import time

import torch

from asr.data import read_manifest
from asr.decoding import add_decoder_arguments, decoder_from_args
from asr.recognizer import Recognizer
from asr.robustness import silence_robustness

TARGETS = {"padded_silence": 2.0, "padded_noise": 2.0, "joined": 3.0}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--manifest", required=True)
    p.add_argument("--limit", type=int, default=0, help="first N utterances only (0: all)")
    p.add_argument("--pad-seconds", type=float, default=1.0)
    p.add_argument("--noise-dbfs", type=float, default=-60.0)
    p.add_argument("--pause-seconds", type=float, default=0.5)
    p.add_argument("--chunk-seconds", type=float, default=20.0)
    p.add_argument("--cut-pause", type=float, default=0.3, help="0: cut only where --chunk-seconds forces it")
    p.add_argument("--threads", type=int, default=1)
    add_decoder_arguments(p)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    utts = read_manifest(args.manifest)
    utts = utts[:args.limit] if args.limit else utts
    rec = Recognizer.from_checkpoint(args.model)
    start = time.perf_counter()
    rates = silence_robustness(rec, utts, decoder_from_args(args, rec.vocab), pad_seconds=args.pad_seconds,
                               noise_dbfs=args.noise_dbfs, pause_seconds=args.pause_seconds,
                               chunk_seconds=args.chunk_seconds, cut_pause=args.cut_pause or None)
    plain = 100 * rates["plain"].wer
    print(f"{args.model} on {args.manifest}: {len(utts)} utterances, {time.perf_counter() - start:.0f} s")
    for name, r in rates.items():
        gap = 100 * r.wer - plain
        target = f"  (target: within {TARGETS[name]:.0f}: {'met' if gap <= TARGETS[name] else 'MISSED'})" \
            if name in TARGETS else ""
        print(f"{name:15s} WER {100 * r.wer:6.2f}%  CER {100 * r.cer:6.2f}%  gap {gap:+6.2f}{target}")


if __name__ == "__main__":
    main()
