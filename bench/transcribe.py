"""Real-time factor of asr-transcribe on the CPU: greedy and beam decoding, the demo model
and a recipe-sized model (asr/conf/model/blstm.yaml: 3 x 320 BiLSTM, 80 mels; weights do not
change the speed of greedy decoding, so an untrained one is used when no trained one is
given), on 1 and 2 threads.

    python bench/transcribe.py [--demo exp/demo/best.pt] [--recipe CKPT] [--manifest exp/demo/data/test.jsonl]
                               [--seconds 120] [--long-minutes 10]

Runs ``asr.transcribe.main`` in this process (the same code path as the command line, stdout
discarded) on utterances of the manifest totalling ``--seconds``, plus one recording of
``--long-minutes`` made by concatenating them (chunked decoding). RTF = processing time /
audio duration, printed beside the real-time limit (1.0). The thread counts are run interleaved,
``--repeats`` times each, and the fastest run of each is kept (the machine is shared).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from asr.checkpoint import save_checkpoint  # noqa: E402
from asr.data import read_manifest  # noqa: E402
from asr.features import FeatureConfig  # noqa: E402
from asr.models import BiRNNConfig  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402
from asr.text import Vocabulary  # noqa: E402
from asr.transcribe import main  # noqa: E402


def run(args: list[str]) -> float:
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = main(args)
    assert rc == 0, f"asr-transcribe failed: {args}"
    return time.perf_counter() - start


def main_bench() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", default="exp/demo/best.pt")
    p.add_argument("--recipe", help="a recipe checkpoint (default: untrained asr/conf/model/blstm.yaml)")
    p.add_argument("--manifest", default="exp/demo/data/test.jsonl")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--long-minutes", type=float, default=10.0)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--decoders", default="greedy,beam")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per configuration; the fastest is kept")
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-transcribe-"))
    utts, total = [], 0.0
    for u in read_manifest(a.manifest):
        if total >= a.seconds:
            break
        utts.append(u)
        total += u.duration
    files = [u.audio_filepath for u in utts]
    audio = sum(sf.info(f).duration for f in files)
    parts = []
    while sum(map(len, parts)) < a.long_minutes * 60 * 16000:
        for f in files:
            x, _ = sf.read(f, dtype="float32")
            parts += [x, np.random.default_rng(len(parts)).normal(0, 3e-3, 6400).astype(np.float32)]
    long = np.concatenate(parts)[:int(a.long_minutes * 60 * 16000)]
    sf.write(tmp / "long.wav", long, 16000, subtype="PCM_16")
    recipe = a.recipe
    if recipe is None:
        torch.manual_seed(0)
        rec = Recognizer(FeatureConfig(), BiRNNConfig(), Vocabulary())
        recipe = str(tmp / "recipe.pt")
        save_checkpoint(recipe, rec.describe())
    models = {"demo (2x192 BiLSTM, 64 mels)": a.demo, "recipe (3x320 BiLSTM, 80 mels)": recipe}
    print(f"# {len(files)} utterances, {audio:.0f} s of audio; long file {len(long) / 16000 / 60:.0f} min; "
          f"torch {torch.__version__}; limit: real time, RTF 1.0")
    threads = [int(t) for t in a.threads.split(",")]
    print(f"{'model':32s} {'decoder':7s} {'input':>10s} " + " ".join(f"{f'RTF {t} thr':>10s}" for t in threads)
          + f" {'limit':>6s} {'x real time':>12s}")
    for name, ckpt in models.items():
        for dec in a.decoders.split(","):
            for label, inputs, seconds in (("utterances", files, audio),
                                           ("long file", [str(tmp / "long.wav")], len(long) / 16000)):
                cmd = [*inputs, "--model", ckpt, "--device", "cpu", "--decoder", dec, "--format", "json"]
                run(cmd[:1] + cmd[len(inputs):])  # warm up
                best = {t: float("inf") for t in threads}
                for _ in range(a.repeats):  # interleaved: both sides see the same machine load
                    for t in threads:
                        torch.set_num_threads(t)
                        best[t] = min(best[t], run(cmd))
                rtf = {t: best[t] / seconds for t in threads}
                print(f"{name:32s} {dec:7s} {label:>10s} " + " ".join(f"{rtf[t]:10.4f}" for t in threads)
                      + f" {1.0:6.1f} {1 / min(rtf.values()):11.0f}x", flush=True)

if __name__ == "__main__":
    main_bench()
