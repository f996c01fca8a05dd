"""Decoding speed and accuracy: greedy vs asr.beam (flashlight + KenLM) vs pyctcdecode,
on the same log-probabilities and the same ARPA LM, at equal beam size.

    nice python bench/decode.py                       # the demo model and data
    nice python bench/decode.py --model M.pt --dev dev.jsonl --test test.jsonl --lm lm.arpa

The acoustic model runs once per manifest. LM weight and word score are tuned for each
beam decoder on the dev set (each on its own grid: KenLM scores are log10 in flashlight,
natural logs in pyctcdecode); speed and WER are then measured on the test set, the
decoders interleaved in ``--rounds`` rounds (the fastest round counts: the machine is
shared), one process each, then with ``--workers`` processes each. ``asr.beam`` tries the 8
most likely tokens per frame and cuts runs of near-certain blank frames to one (its
defaults); the "all tokens" row tries every token, the "all frames" row keeps every frame.

pyctcdecode is a benchmark-only dependency. Its metadata pins numpy<2 (pip would downgrade
the project's numpy) but it runs with numpy 2 and imports only pygtrie and kenlm, so it is
not a package extra; ``make bench-deps`` installs the three into ``.venv`` without their
pins (``pip install --no-deps pyctcdecode pygtrie kenlm``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from asr.beam import BeamSearchDecoder  # noqa: E402
from asr.data import read_manifest  # noqa: E402
from asr.decoding import GreedyDecoder  # noqa: E402
from asr.evaluation import utterance_log_probs  # noqa: E402
from asr.arpa import arpa_unigrams  # noqa: E402
from asr.lm import build_arpa  # noqa: E402
from asr.metrics import error_rates  # noqa: E402
from asr.recognizer import Recognizer  # noqa: E402


def outputs(recognizer, manifest):
    utts = read_manifest(manifest)
    refs = [recognizer.vocab.normalize(u.text) for u in utts]
    return utterance_log_probs(recognizer, utts), refs, sum(u.duration for u in utts)


def pyctc_decoder(vocab, lm, alpha, beta):
    try:
        from pyctcdecode import build_ctcdecoder
    except ImportError:
        sys.exit("error: bench/decode.py compares with pyctcdecode, which is not installed; run make bench-deps")

    unigrams = [w for w in arpa_unigrams(lm) if w not in ("<s>", "</s>", "<unk>")]
    return build_ctcdecoder(["", *vocab.tokens], kenlm_model_path=str(lm), unigrams=unigrams, alpha=alpha, beta=beta)


_PYCTC = None


def _pyctc_init(vocab, lm, alpha, beta):
    global _PYCTC
    _PYCTC = pyctc_decoder(vocab, lm, alpha, beta)


def _pyctc_one(args):
    x, beam = args
    return _PYCTC.decode(x, beam_width=beam)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "exp/demo/best.pt"))
    p.add_argument("--dev", default=str(ROOT / "exp/demo/data/dev.jsonl"))
    p.add_argument("--test", default=str(ROOT / "exp/demo/data/test.jsonl"))
    p.add_argument("--lm", help="ARPA word LM (default: a 3-gram built from --lm-text)")
    p.add_argument("--lm-text", default=str(ROOT / "exp/demo/data/train.jsonl"))
    p.add_argument("--beam-size", type=int, default=50)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--no-tune", action="store_true", help="use the weights given below")
    p.add_argument("--lm-weight", type=float, default=1.0)
    p.add_argument("--word-score", type=float, default=2.0)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--beta", type=float, default=1.0)
    a = p.parse_args()
    torch.set_num_threads(1)

    tmp = tempfile.TemporaryDirectory()
    lm = a.lm
    if lm is None:
        lm = Path(tmp.name) / "lm.arpa"
        build_arpa(a.lm_text, lm, order=3)
    rec = Recognizer.from_checkpoint(a.model)
    dev_lp, dev_refs, _ = outputs(rec, a.dev)
    test_lp, test_refs, seconds = outputs(rec, a.test)
    test_np = [x.numpy() for x in test_lp]
    print(f"LM {lm}; dev {len(dev_lp)} utterances; test {len(test_lp)} utterances, {seconds:.1f} s of audio; "
          f"beam {a.beam_size}; {a.workers} worker processes; {a.rounds} rounds", flush=True)

    ours = BeamSearchDecoder(rec.vocab, lm=lm, beam_size=a.beam_size, num_threads=1)
    if not a.no_tune:
        def wer(hyps):
            return error_rates(dev_refs, hyps).wer
        grid = [(lw, ws) for lw in (0.5, 1.0, 1.5, 2.0) for ws in (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)]
        a.lm_weight, a.word_score = min(grid, key=lambda g: (wer([h[0].text for h in ours.reweighted(*g)
                                                                  .decode_list(dev_lp)]), g))
        dev_np = [x.numpy() for x in dev_lp]
        grid = [(al, be) for al in (0.25, 0.5, 0.75, 1.0, 1.5) for be in (0.0, 1.0, 2.0, 3.0)]
        def pyctc_wer(g):
            dec = pyctc_decoder(rec.vocab, lm, *g)
            return wer([dec.decode(x, beam_width=a.beam_size) for x in dev_np]), g
        a.alpha, a.beta = min(grid, key=pyctc_wer)
        print(f"tuned on dev: ours --lm-weight {a.lm_weight} --word-score {a.word_score}; "
              f"pyctcdecode alpha {a.alpha} beta {a.beta}", flush=True)
    ours = ours.reweighted(a.lm_weight, a.word_score)
    ours_all = BeamSearchDecoder(rec.vocab, lm=lm, beam_size=a.beam_size, lm_weight=a.lm_weight,
                                 word_score=a.word_score, num_threads=1, beam_size_token=0)
    ours_frames = BeamSearchDecoder(rec.vocab, lm=lm, beam_size=a.beam_size, lm_weight=a.lm_weight,
                                    word_score=a.word_score, num_threads=1, blank_skip=1.0)
    ours_par = BeamSearchDecoder(rec.vocab, lm=lm, beam_size=a.beam_size, lm_weight=a.lm_weight,
                                 word_score=a.word_score, num_threads=a.workers)
    ours_par.decode_list(test_lp[:8])  # start the workers
    pyctc = pyctc_decoder(rec.vocab, lm, a.alpha, a.beta)
    pool = multiprocessing.get_context("fork").Pool(a.workers, _pyctc_init, (rec.vocab, lm, a.alpha, a.beta))
    pool.map(_pyctc_one, [(x, a.beam_size) for x in test_np[:8]])
    greedy = GreedyDecoder(rec.vocab)

    runs = {
        "greedy": lambda: [greedy.decode(x[None], torch.tensor([len(x)]))[0][0].text for x in test_lp],
        "asr.beam, 1 process": lambda: [h[0].text for h in ours.decode_list(test_lp)],
        "asr.beam all tokens, 1 proc": lambda: [h[0].text for h in ours_all.decode_list(test_lp)],
        "asr.beam all frames, 1 proc": lambda: [h[0].text for h in ours_frames.decode_list(test_lp)],
        "pyctcdecode, 1 process": lambda: [pyctc.decode(x, beam_width=a.beam_size) for x in test_np],
        f"asr.beam, {a.workers} processes": lambda: [h[0].text for h in ours_par.decode_list(test_lp)],
        f"pyctcdecode, {a.workers} processes": lambda: pool.map(_pyctc_one, [(x, a.beam_size) for x in test_np],
                                                               chunksize=max(1, len(test_np) // (4 * a.workers))),
    }
    best = {k: float("inf") for k in runs}
    hyps = {}
    for _ in range(a.rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            hyps[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t)
    pool.close()
    ours_par.close()

    print(f"\n{'decoder':<28} {'utt/s':>8} {'RTF':>9} {'WER%':>6} {'CER%':>6} {'vs pyctcdecode':>15}")
    for name in runs:
        r = error_rates(test_refs, hyps[name])
        peer = f"pyctcdecode, {a.workers} processes" if "processes" in name else "pyctcdecode, 1 process"
        print(f"{name:<28} {len(test_lp) / best[name]:8.1f} {best[name] / seconds:9.5f} {100 * r.wer:6.2f} "
              f"{100 * r.cer:6.2f} {best[peer] / best[name]:14.1f}x")


if __name__ == "__main__":
    main()
