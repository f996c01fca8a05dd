"""CPU inference with packed sequences against the padded batch.

Evaluation and transcription pack sequences on the CPU so that an utterance's output does
not depend on what it is batched with (padding would otherwise run through the backward
direction of every shorter utterance). This measures what that costs: the same eval-mode
model, forward only under ``torch.no_grad()``, on batches of 16 random-feature utterances
whose lengths are either bucketed (within 10%, as ``asr`` batches them) or mixed (1-10 s).
The two sides alternate repetition by repetition and the fastest of each is kept. One
thread::

    python bench/packing.py
"""

from __future__ import annotations

import argparse
import time

import torch

from asr.models import BiRNNConfig, BiRNNCTC


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print(f"{'lengths':9} {'model':7} {'padded s':>9} {'packed s':>9} {'packed/padded':>14}")
    for lengths_kind, low, high in (("bucketed", 450, 500), ("mixed", 100, 1000)):
        for hidden, layers in ((192, 2), (320, 3)):
            padded = BiRNNCTC(BiRNNConfig(hidden_size=hidden, num_layers=layers, pack="never"), 80, 30).eval()
            packed = BiRNNCTC(BiRNNConfig(hidden_size=hidden, num_layers=layers, pack="always"), 80, 30).eval()
            packed.load_state_dict(padded.state_dict())
            lengths = torch.randint(low, high, (args.batch,))  # feature frames at a 10 ms hop
            x = torch.randn(args.batch, int(lengths.max()), 80)  # (batch, frames, n_mels)
            best = {"padded": float("inf"), "packed": float("inf")}
            with torch.no_grad():
                for _ in range(args.repeats):
                    for name, model in (("padded", padded), ("packed", packed)):
                        start = time.perf_counter()
                        model(x, lengths)
                        best[name] = min(best[name], time.perf_counter() - start)
            print(f"{lengths_kind:9} {hidden}x{layers:<3} {best['padded']:9.3f} {best['packed']:9.3f} "
                  f"{best['packed'] / best['padded']:14.2f}")


if __name__ == "__main__":
    main()
