"""Checkpoint averaging: the mean of several checkpoints' weights, usually the last epochs
of one run, is often a better model than any of them. CLI: ``asr-average``::

    asr-average --exp-dir exp/demo --last 3 --out exp/demo/averaged.pt
    asr-average exp/demo/checkpoints/epoch-005.pt exp/demo/checkpoints/epoch-006.pt --out avg.pt

``asr-train average_last=N`` does the same at the end of training.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from asr.checkpoint import CheckpointError, list_checkpoints, load_checkpoint, save_checkpoint
from asr.utils import HelpFormatter, UserError, run_cli

MODEL_KEYS = ("feature_config", "model_config", "vocab")


def average_checkpoints(paths: Sequence[str | os.PathLike]) -> dict:
    """A model checkpoint (weights only) whose floating-point tensors are the mean over
    ``paths``; other tensors (and tensors equal in all) are taken from the first.

    Raises
    ------
    CheckpointError
        when a file is missing or corrupt, or the checkpoints describe different models.
    """
    if not paths:
        raise UserError("no checkpoints to average; pass at least one .pt file")
    first = load_checkpoint(paths[0])
    sums = {k: v.double() if v.is_floating_point() else v for k, v in first["state_dict"].items()}
    differs: set[str] = set()
    for path in paths[1:]:
        state = load_checkpoint(path)
        for key in MODEL_KEYS:
            if state[key] != first[key]:
                raise CheckpointError(f"{path}: its {key} differs from {paths[0]}'s; average checkpoints "
                                      "of one model (the same run) only")
        if state["state_dict"].keys() != first["state_dict"].keys():
            raise CheckpointError(f"{path}: its weights do not match {paths[0]}'s; average checkpoints of one run")
        for k, v in state["state_dict"].items():
            if v.shape != first["state_dict"][k].shape:
                raise CheckpointError(f"{path}: {k} has shape {tuple(v.shape)}, {paths[0]} has "
                                      f"{tuple(first['state_dict'][k].shape)}; average checkpoints of one run")
            if v.is_floating_point():
                sums[k] += v.double()
                if not torch.equal(v, first["state_dict"][k]):
                    differs.add(k)
    n = len(paths)
    averaged = {k: (sums[k] / n).to(v.dtype) if k in differs else v for k, v in first["state_dict"].items()}
    return {**{k: first[k] for k in MODEL_KEYS}, "state_dict": averaged,
            "averaged_from": [str(p) for p in paths]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="asr-average", description="Average the weights of several checkpoints.")
    p.add_argument("checkpoints", nargs="*", help="checkpoints to average (or use --exp-dir/--last)")
    p.add_argument("--exp-dir", help="a training run's folder: average its last --last epoch checkpoints")
    p.add_argument("--last", type=int, default=5, help="how many of the newest epochs to average (default 5)")
    p.add_argument("--out", required=True, help="where to write the averaged model (e.g. exp/demo/averaged.pt)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = [Path(p) for p in args.checkpoints]
    if args.exp_dir:
        if args.last < 1:
            raise UserError(f"--last {args.last}: expected a positive number of epochs")
        found = list_checkpoints(args.exp_dir, "epoch")
        if not found:
            raise UserError(f"{args.exp_dir}/checkpoints: no epoch-*.pt checkpoints; pass a folder asr-train "
                            "wrote into, or list checkpoint files")
        if len(found) < args.last:
            print(f"asr-average: only {len(found)} epoch checkpoints in {args.exp_dir} (asr-train keeps "
                  f"keep_last_n of them); averaging those", file=sys.stderr)
        paths += found[-args.last:]
    if not paths:
        raise UserError("nothing to average: list checkpoint files or pass --exp-dir")
    save_checkpoint(args.out, average_checkpoints(paths))
    print(f"averaged {len(paths)} checkpoints ({', '.join(p.name for p in paths)}) into {args.out}")
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
