"""N-gram language models for beam search. CLI: ``asr-lm build``, ``mix``, ``words`` and ``tune``.

``build`` estimates an interpolated modified Kneser-Ney model (Chen & Goodman 1998, as
KenLM's ``lmplz`` does) from a text file (a sentence a line) or from a manifest's
transcripts and writes it in ARPA format, which KenLM, flashlight's decoder and
pyctcdecode load. ``--unit word`` (default) models words, for decoding with a lexicon;
``--unit char`` models characters with ``|`` for the space, for lexicon-free decoding, and
``--unit piece`` a subword model's pieces (:mod:`asr.subword`), the checkpoint's own
segmentation of each word, likewise::

    asr-lm build --order 3 train.jsonl words.arpa
    asr-lm build --order 6 --unit char train.jsonl chars.arpa
    asr-lm build --order 6 --unit piece --model exp/run/best.pt train.jsonl pieces.arpa

``mix`` interpolates ARPA models linearly into one (as SRILM's ``ngram -mix-lm``), and
``words`` writes a unigram model of general word frequencies (the wordfreq package's list,
offline, or a word list with counts), so that a model of a corpus's transcripts can be
mixed with words they lack::

    asr-lm words general.arpa --top 50000
    asr-lm mix words.arpa general.arpa mixed.arpa --weights 0.95,0.05

``tune`` runs the acoustic model over a dev manifest once and decodes its outputs with
every pair of LM weight and word score, printing a WER table and the best pair::

    asr-lm tune --model exp/demo/best.pt --manifest dev.jsonl --lm words.arpa

No maintained PyPI package estimates modified Kneser-Ney (``kenlm`` only queries models;
``arpabo`` uses one fixed discount and does not normalise), hence the compact estimator here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from asr.arpa import (BOS, EOS, MAX_ORDER, SIL, UNK, LMError, arpa_logprob, check_lm, is_binary_lm,
                      read_arpa)
from asr.beam_flags import add_beam_arguments, check_beam_flags
from asr.text import DEFAULT_CHARS, NUMBERS, NUMBERS_HELP, Vocabulary, vocab_from_options
from asr.utils import HelpFormatter, UserError, atomic_open, check_writable, run_cli, text_lines

#: What ``asr-lm build --unit`` models.
UNITS = ("word", "char", "piece")

#: Discounts for counts 1, 2, 3+ when the count-of-counts give none (tiny corpora); KenLM's fallback.
FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)


# ----------------------------------------------------------------------------- text

def is_manifest(path: str | os.PathLike) -> bool:
    """True when the first non-blank line of ``path`` is a JSON object with a ``text`` key."""
    with open(path, encoding="utf-8-sig", errors="replace") as f:  # a bad encoding is reported when read
        for line in f:
            if line.strip():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    return False
                return isinstance(rec, dict) and "text" in rec
    return False


def read_sentences(path: str | os.PathLike, vocab: Vocabulary | None = None, unit: str = "word") -> list[list[str]]:
    """Sentences of ``path`` (a text file, a sentence a line, or a JSON-lines manifest),
    normalised with ``vocab`` as training targets are, as lists of words, of characters
    (``unit="char"``) or of ``vocab``'s subword pieces (``unit="piece"``), the last two
    with ``|`` for the space. Empty sentences are dropped."""
    vocab = vocab or Vocabulary()
    if unit not in UNITS:
        raise ValueError(f"unit {unit!r}: expected one of {', '.join(UNITS)}")
    if unit == "piece" and vocab.units != "subword":
        raise LMError("a piece LM needs a subword model's pieces (asr-lm build --unit piece --model CHECKPOINT, "
                      "a checkpoint trained with data.subwords); for a character model use --unit char")
    path = Path(path)
    if not path.is_file():
        raise LMError(f"{path}: LM training text not found; expected a text file (a sentence a line) "
                      "or a JSON-lines manifest")
    if is_manifest(path):
        from asr.data import read_manifest

        texts: Iterable[str] = (u.text for u in read_manifest(path, check_files=False))
    else:
        texts = text_lines(path, "text file")
    out = []
    for text in texts:
        text = vocab.normalize(text)
        if not text:
            continue
        if unit == "word":
            out.append(text.split())
        elif unit == "char":
            out.append(list(text.replace(" ", SIL)))
        else:  # normalised text holds only the model's characters, and each is a piece
            out.append([vocab.tokens[i - 1].replace(" ", SIL) for i in vocab.encode(text)])
    if not out:
        raise LMError(f"{path}: no text left after normalisation; the LM needs at least one sentence")
    return out


# ----------------------------------------------------------------------------- estimation

def _discounts(counts: Iterable[int]) -> tuple[float, float, float]:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the count-of-counts of one order."""
    n = Counter(min(c, 4) for c in counts)
    n1, n2, n3, n4 = (n[k] for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return FALLBACK_DISCOUNTS
    y = n1 / (n1 + 2 * n2)
    d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
    if not all(0 < dk <= k for k, dk in enumerate(d, 1)):
        return FALLBACK_DISCOUNTS
    return d


def estimate(sentences: Sequence[Sequence[str]], order: int = 3) -> list[dict[tuple, tuple[float, float | None]]]:
    """Interpolated modified Kneser-Ney n-gram model.

    Parameters
    ----------
    sentences : sequence of sequence of str
        Tokenised sentences; ``<s>``/``</s>`` are added.
    order : int
        Highest n-gram order.

    Returns
    -------
    list of dict
        ``model[k-1][ngram] = (probability, backoff weight or None)`` for every n-gram of
        order ``k``, the probability interpolated with lower orders, as ARPA stores it.
        Unigrams include ``<unk>`` and ``<s>`` (probability 0: it is never predicted).
        The order is lowered to the longest padded sentence (KenLM rejects empty orders).
    """
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    order = min(order, max((len(s) for s in sentences), default=0) + 2)
    raw: list[Counter] = [Counter() for _ in range(order)]
    for s in sentences:
        toks = (BOS, *s, EOS)
        for k in range(1, order + 1):
            c = raw[k - 1]
            for i in range(len(toks) - k + 1):
                c[toks[i:i + k]] += 1
    # Adjusted counts: raw for the top order and for n-grams starting with <s> (nothing can
    # precede them); else the number of distinct words seen before the n-gram.
    adj: list[dict[tuple, int]] = []
    for k in range(1, order + 1):
        if k == order:
            a = dict(raw[k - 1])
        else:
            a = {g: c for g, c in raw[k - 1].items() if g[0] == BOS}
            for g in raw[k]:  # g[1:] never starts with <s>
                a[g[1:]] = a.get(g[1:], 0) + 1
        a.pop((BOS,), None)  # <s> is never predicted
        adj.append(a)
    vocab_size = len(adj[0]) + (0 if (UNK,) in adj[0] else 1)  # every predictable word and <unk>
    model: list[dict[tuple, tuple[float, float | None]]] = []
    gammas: list[dict[tuple, float]] = []  # interpolation weight of each context
    for k, a in enumerate(adj, 1):
        d = _discounts(a.values())
        totals: dict[tuple, float] = defaultdict(float)
        mass: dict[tuple, float] = defaultdict(float)
        for g, c in a.items():
            totals[g[:-1]] += c
            mass[g[:-1]] += d[min(c, 3) - 1]
        gamma = {h: mass[h] / totals[h] for h in totals}
        gammas.append(gamma)
        probs = {}
        for g, c in a.items():
            h = g[:-1]
            lower = model[k - 2][g[1:]][0] if k > 1 else 1 / vocab_size
            probs[g] = (c - d[min(c, 3) - 1]) / totals[h] + gamma[h] * lower
        if k == 1:
            probs.setdefault((UNK,), gamma[()] / vocab_size)
            probs[(BOS,)] = 0.0
        model.append({g: (p, None) for g, p in probs.items()})
    for k in range(1, order):  # backoff weight of a context = its interpolation weight
        gamma = gammas[k]
        model[k - 1] = {g: (p, gamma.get(g)) for g, (p, _) in model[k - 1].items()}
    return model


def write_arpa(model: Sequence[dict[tuple, tuple[float, float | None]]], path: str | os.PathLike) -> None:
    """Write ``model`` (as :func:`estimate` returns) as an ARPA file, atomically."""
    def log10(p: float) -> str:
        return f"{math.log10(p):.7g}" if p > 0 else "-99"

    with atomic_open(path) as f:
        f.write("\\data\\\n")
        for k, grams in enumerate(model, 1):
            f.write(f"ngram {k}={len(grams)}\n")
        for k, grams in enumerate(model, 1):
            f.write(f"\n\\{k}-grams:\n")
            for g in sorted(grams):
                p, bow = grams[g]
                f.write(f"{log10(p)}\t{' '.join(g)}" + (f"\t{log10(bow)}\n" if bow is not None else "\n"))
        f.write("\n\\end\\\n")


def build_arpa(text_path: str | os.PathLike, out_path: str | os.PathLike, order: int = 3, unit: str = "word",
               vocab: Vocabulary | None = None) -> list[int]:
    """Estimate a model from ``text_path`` and write it to ``out_path``; returns n-gram counts per order."""
    model = estimate(read_sentences(text_path, vocab, unit), order)
    write_arpa(model, out_path)
    return [len(m) for m in model]


# ----------------------------------------------------------------------------- mixing

def unigram_model(frequencies: Mapping[str, float], vocab: Vocabulary | None = None, eos_prob: float = 0.1,
                  covered: float | None = None) -> tuple[list[dict[tuple, tuple[float, None]]], Counter]:
    """A unigram word model from word frequencies (a word list with counts, or relative
    frequencies from a package such as wordfreq), for mixing into a model of in-domain text.

    Words are normalised with ``vocab`` as LM training text is; a word that normalises to
    nothing or to several words is skipped and counted in the returned Counter (by reason).
    ``eos_prob`` is the probability of ``</s>``; ``covered`` is the share of all running
    words the listed ones make up (the rest, ``<unk>``'s mass), by default ``0.99``.

    Returns ``(model, skipped)``, ``model`` as :func:`estimate` returns it.
    """
    if not 0 < eos_prob < 1:
        raise ValueError(f"eos_prob={eos_prob}: expected a probability between 0 and 1")
    vocab = vocab or Vocabulary()
    merged: dict[str, float] = defaultdict(float)
    skipped: Counter = Counter()
    for word, freq in frequencies.items():
        norm = vocab.normalize(word)
        if not freq > 0:
            skipped["zero or negative count"] += 1
        elif not norm or " " in norm:
            skipped["not one word after normalisation"] += 1
        else:
            merged[norm] += freq
    if not merged:
        raise LMError("no word left after normalisation; the word list needs at least one word the "
                      "vocabulary can spell")
    covered = 0.99 if covered is None else covered
    if not 0 < covered <= 1:
        raise ValueError(f"covered={covered}: expected the listed words' share of running text, in (0, 1]")
    total = sum(merged.values())
    probs = {(w,): (1 - eos_prob) * covered * f / total for w, f in merged.items()}
    probs[(UNK,)] = (1 - eos_prob) * (1 - covered)  # no listed word normalises to <unk> or </s>
    probs[(EOS,)] = eos_prob
    probs[(BOS,)] = 0.0
    return [{g: (p, None) for g, p in probs.items()}], skipped


def check_mix_weights(weights: Sequence[float], n_models: int) -> None:
    """``ValueError`` unless ``weights`` are ``n_models`` non-negative numbers summing to 1."""
    if len(weights) != n_models or not n_models:
        raise ValueError(f"{n_models} models and {len(weights)} weights: expected one weight per model")
    if any(w < 0 for w in weights) or abs(sum(weights) - 1) > 1e-6:
        raise ValueError(f"weights {', '.join(f'{w:g}' for w in weights)}: expected non-negative weights "
                         "that sum to 1")


def mix_models(models: Sequence[Sequence[Mapping[tuple, tuple[float, float]]]],
               weights: Sequence[float]) -> list[dict[tuple, tuple[float, float | None]]]:
    """Linear interpolation of back-off n-gram models into one back-off model (as SRILM's
    ``ngram -mix-lm``): ``P(w | h) = sum_i weights[i] * P_i(w | h)``.

    Parameters
    ----------
    models : sequence of list of dict
        Each as :func:`asr.arpa.read_arpa` returns it (log10 probabilities and back-offs);
        orders may differ. A word outside a model's vocabulary has probability 0 under it.
    weights : sequence of float
        Non-negative, one per model, summing to 1.

    Returns
    -------
    list of dict
        As :func:`estimate` returns it. Every n-gram explicit in any model is explicit in the
        mix with the exact interpolated probability; back-off weights renormalise each
        context, so a word never seen after a context gets the mix's lower-order estimate
        (the one approximation of a static mix).
    """
    check_mix_weights(weights, len(models))
    order = max(len(m) for m in models)
    vocabs = [{g[0] for g in m[0]} for m in models]

    def prob(context: tuple, word: str) -> float:
        return sum(lam * 10 ** arpa_logprob(m, context, word)
                   for lam, m, v in zip(weights, models, vocabs) if lam > 0 and word in v)

    mixed: list[dict[tuple, float]] = []
    for k in range(order):
        grams = set().union(*(m[k] for m in models if len(m) > k))
        mixed.append({g: (0.0 if g == (BOS,) else prob(g[:-1], g[-1])) for g in grams})
    children: dict[tuple, list[tuple]] = defaultdict(list)
    for k in range(1, order):
        for g in mixed[k]:
            children[g[:-1]].append(g)
    bows: dict[tuple, float] = {}

    def lower(context: tuple, word: str) -> float:
        """P_mix(word | context) by the mix's own back-off (orders below ``context``'s done)."""
        factor = 1.0
        while True:
            p = mixed[len(context)].get((*context, word))
            if p is not None:
                return factor * p
            if not context:
                return 0.0
            factor *= bows.get(context, 1.0)
            context = context[1:]

    model: list[dict[tuple, tuple[float, float | None]]] = []
    for k in range(order):
        for h in mixed[k]:
            kids = children.get(h)
            if kids and k + 1 < order:
                seen = sum(mixed[k + 1][g] for g in kids)
                below = sum(lower(h[1:], g[-1]) for g in kids)
                bows[h] = max(1 - seen, 1e-12) / max(1 - below, 1e-12)
        model.append({g: (p, bows.get(g, 1.0) if k + 1 < order else None) for g, p in mixed[k].items()})
    return model


def read_word_counts(path: str | os.PathLike) -> dict[str, float]:
    """``word [count]`` a line (count 1 when absent) -> ``{word: count}``, repeats added up."""
    if not Path(path).is_file():
        raise LMError(f"--word-counts {path}: file not found; expected a word list, a word and an optional "
                      "count a line")
    counts: dict[str, float] = defaultdict(float)
    for n, line in enumerate(text_lines(path, "word list"), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            counts[parts[0]] += float(parts[1]) if len(parts) > 1 else 1.0
        except ValueError:
            raise LMError(f"{path}:{n}: {line.strip()!r}: expected a word and an optional count") from None
    return counts


def wordfreq_frequencies(lang: str = "en", top: int = 50000) -> tuple[dict[str, float], float]:
    """The ``top`` most frequent words of ``lang`` from the wordfreq package (its large list,
    offline: the data ships in the wheel) and the share of running text they cover."""
    try:
        import wordfreq
    except ImportError:
        raise UserError("the word list needs the wordfreq package: pip install 'wordfreq>=3' "
                        "(or pass --word-counts FILE)") from None
    words = wordfreq.top_n_list(lang, top, wordlist="large")
    freqs = {w: wordfreq.word_frequency(w, lang, wordlist="large") for w in words}
    return freqs, sum(freqs.values())


# ----------------------------------------------------------------------------- CLI

def _floats(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one number")
    return values


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(formatter_class=HelpFormatter,
        prog="asr-lm", description="Build and tune n-gram language models.")
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", formatter_class=HelpFormatter, help="estimate a modified Kneser-Ney ARPA model",
                       description="Estimate an interpolated modified Kneser-Ney n-gram model (ARPA).")
    b.add_argument("text", help="text file (a sentence a line) or JSON-lines manifest")
    b.add_argument("out", help="ARPA file to write")
    b.add_argument("--order", type=int, default=3, help=f"n-gram order, 1 to {MAX_ORDER} (default 3)")
    b.add_argument("--unit", choices=UNITS, default="word",
                   help="word (default; decode with a lexicon), char or piece (lexicon-free decoding; piece "
                        "needs --model)")
    b.add_argument("--model", metavar="CHECKPOINT", help="normalise the text as this model does (its "
                   "characters and numbers; instead of --chars and --numbers) and, with --unit piece, "
                   "segment it with its subword pieces")
    b.add_argument("--chars", default=DEFAULT_CHARS, help="vocabulary characters used to normalise the text")
    b.add_argument("--numbers", choices=NUMBERS, default="auto", help=NUMBERS_HELP)
    m = sub.add_parser("mix", formatter_class=HelpFormatter, help="interpolate ARPA models into one",
                       description="Linear interpolation of n-gram models (ARPA) into one ARPA model, e.g. a "
                                   "3-gram of the training transcripts with a word list of general English "
                                   "(asr-lm words), so that words the transcripts lack can be recognised.")
    m.add_argument("models", nargs="+", metavar="MODEL", help="ARPA files to mix")
    m.add_argument("out", help="ARPA file to write")
    m.add_argument("--weights", type=_floats, help="comma list, one weight per model, summing to 1 "
                   "(default: equal weights)")
    w = sub.add_parser("words", formatter_class=HelpFormatter, help="a unigram ARPA model of a word list",
                       description="A unigram word model (ARPA) of general English word frequencies from the "
                                   "wordfreq package (offline), or of a word list with counts, for asr-lm mix.")
    w.add_argument("out", help="ARPA file to write")
    w.add_argument("--word-counts", metavar="FILE", help="a word and an optional count a line "
                   "(default: the wordfreq package's list)")
    w.add_argument("--top", type=int, default=50000, help="wordfreq: the most frequent N words (default 50000)")
    w.add_argument("--lang", default="en", help="wordfreq: language code (default en)")
    w.add_argument("--eos-prob", type=float, default=0.1,
                   help="probability of the sentence end, about 1 / (words a sentence + 1) (default 0.1)")
    w.add_argument("--chars", default=DEFAULT_CHARS, help="vocabulary characters used to normalise the words")
    w.add_argument("--numbers", choices=NUMBERS, default="auto", help=NUMBERS_HELP)
    t = sub.add_parser("tune", formatter_class=HelpFormatter,
                       help="grid/random search of LM weight and word score on a dev set",
                       description="Search LM weight and word score on a dev manifest; the acoustic model "
                                   "runs once.")
    t.add_argument("--model", required=True, help="checkpoint written by asr-train")
    t.add_argument("--manifest", required=True, help="dev manifest with reference texts")
    t.add_argument("--lm-weights", type=_floats, default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0],
                   help="comma list of LM weights (default 0,0.5,1,1.5,2,3)")
    t.add_argument("--word-scores", type=_floats, default=[-1.0, 0.0, 1.0, 2.0, 3.0, 4.0],
                   help="comma list of word scores (default -1,0,1,2,3,4)")
    t.add_argument("--random", type=int, default=0, metavar="N",
                   help="instead of the grid, N random pairs within the lists' ranges")
    t.add_argument("--seed", type=int, default=0, help="seed of --random")
    t.add_argument("--threads", type=int, default=0, help="decoding worker processes (default: one per core)")
    t.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    t.add_argument("--batch-seconds", type=float, default=200.0,
                   help="audio seconds per batch, padding included (memory only: results do not depend on it)")
    g = t.add_argument_group("decoding (as asr-evaluate --decoder beam)")
    add_beam_arguments(g, lm_required=True)
    return p


def search_pairs(lm_weights: Sequence[float], word_scores: Sequence[float], n_random: int = 0,
                 seed: int = 0) -> list[tuple[float, float]]:
    """The grid of ``(lm_weight, word_score)`` pairs, or ``n_random`` pairs drawn uniformly
    within the lists' ranges."""
    if n_random <= 0:
        return [(a, b) for a in lm_weights for b in word_scores]
    rng = random.Random(seed)
    return [(round(rng.uniform(min(lm_weights), max(lm_weights)), 3),
             round(rng.uniform(min(word_scores), max(word_scores)), 3)) for _ in range(n_random)]


def tune(log_probs: Sequence, references: Sequence[str], decoder, pairs: Sequence[tuple[float, float]]) -> list[dict]:
    """WER/CER of ``decoder`` re-weighted with each ``(lm_weight, word_score)`` pair.

    Parameters
    ----------
    log_probs : sequence of Tensor
        One ``(frames, vocab)`` tensor per utterance, computed once.
    references : sequence of str
        Normalised reference transcripts, same order.
    decoder : asr.beam.BeamSearchDecoder
        Shares its LM and lexicon with every re-weighted copy.
    """
    from asr.metrics import error_rates

    rows = []
    for lm_weight, word_score in pairs:
        dec = decoder.reweighted(lm_weight, word_score)
        hyps = [n[0].text for n in dec.decode_list(log_probs)]
        rows.append({"lm_weight": lm_weight, "word_score": word_score, "rates": error_rates(references, hyps)})
    return rows


def _main_tune(args) -> int:
    import torch

    from asr.beam import BeamSearchDecoder
    from asr.data import read_manifest
    from asr.decoding import GreedyDecoder
    from asr.evaluation import utterance_log_probs
    from asr.metrics import error_rates
    from asr.recognizer import Recognizer
    from asr.utils import resolve_device

    check_beam_flags(args.beam_size, args.beam_size_token, args.blank_skip, blank_penalty=args.blank_penalty)
    if not args.batch_seconds > 0:
        raise UserError(f"--batch-seconds {args.batch_seconds}: expected a positive number of seconds")
    device = resolve_device(args.device)
    recognizer = Recognizer.from_checkpoint(args.model, device)
    utterances = read_manifest(args.manifest)
    decoder = BeamSearchDecoder(recognizer.vocab, lm=args.lm, lexicon=args.lexicon, beam_size=args.beam_size,
                                beam_threshold=args.beam_threshold, blank_skip=args.blank_skip,
                                blank_penalty=args.blank_penalty,
                                beam_size_token=args.beam_size_token, num_threads=args.threads)
    t0 = time.perf_counter()
    log_probs = utterance_log_probs(recognizer, utterances, device, args.batch_seconds)
    refs = [recognizer.vocab.normalize(u.text) for u in utterances]
    print(f"acoustic model: {len(utterances)} utterances in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    pairs = search_pairs(args.lm_weights, args.word_scores, args.random, args.seed)
    greedy = GreedyDecoder(recognizer.vocab, args.blank_penalty)
    greedy_rates = error_rates(refs, [greedy.decode(lp[None], torch.tensor([len(lp)]))[0][0].text
                                      for lp in log_probs])
    print(f"{'lm_weight':>9} {'word_score':>10} {'WER%':>7} {'CER%':>7}")
    print(f"{'greedy':>9} {'':>10} {100 * greedy_rates.wer:7.2f} {100 * greedy_rates.cer:7.2f}")
    rows = []
    for pair in pairs:
        row = tune(log_probs, refs, decoder, [pair])[0]
        rows.append(row)
        r = row["rates"]
        print(f"{row['lm_weight']:9.3g} {row['word_score']:10.3g} {100 * r.wer:7.2f} {100 * r.cer:7.2f}", flush=True)
    best = min(rows, key=lambda r: (r["rates"].wer, r["rates"].cer))
    penalty = f" --blank-penalty {args.blank_penalty:g}" if args.blank_penalty else ""
    print(f"best: --lm-weight {best['lm_weight']:g} --word-score {best['word_score']:g}{penalty} "
          f"(WER {100 * best['rates'].wer:.2f}%, greedy {100 * greedy_rates.wer:.2f}%)")
    return 0


def _join_negative_lists(argv: list[str]) -> list[str]:
    """``--word-scores -1,0,1`` -> ``--word-scores=-1,0,1`` (argparse takes ``-1,0,1`` for a flag)."""
    out = []
    for arg in argv:
        if out and out[-1] in ("--lm-weights", "--word-scores") and arg[:1] == "-" and arg[1:2] in "0123456789.":
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(_join_negative_lists(sys.argv[1:] if argv is None else list(argv)))
    if args.command == "build":
        if not 1 <= args.order <= MAX_ORDER:
            raise UserError(f"--order {args.order}: expected an n-gram order from 1 to {MAX_ORDER} (the beam "
                            f"decoder's KenLM loads at most {MAX_ORDER}-grams)")
        if args.model:
            from asr.recognizer import Recognizer

            vocab = Recognizer.from_checkpoint(args.model).vocab
        elif args.unit == "piece":
            raise UserError("--unit piece needs --model CHECKPOINT: the subword model (trained with "
                            "data.subwords) whose pieces the LM is to count")
        else:
            vocab = vocab_from_options(args.chars, args.numbers)
        check_writable(args.out, "ARPA output")
        counts = build_arpa(args.text, args.out, args.order, args.unit, vocab)
        print(f"wrote {args.out}: {len(counts)}-gram {args.unit} model, "
              + ", ".join(f"{n} {k}-grams" for k, n in enumerate(counts, 1)))
        return 0
    if args.command == "mix":
        return _main_mix(args)
    if args.command == "words":
        return _main_words(args)
    return _main_tune(args)


def _main_mix(args) -> int:
    if len(args.models) < 2:
        raise UserError(f"asr-lm mix got one model ({args.models[0]}) and the output {args.out}; expected "
                        "two or more ARPA files to mix, then the output file")
    weights = args.weights or [1 / len(args.models)] * len(args.models)
    try:
        check_mix_weights(weights, len(args.models))
    except ValueError as e:
        raise UserError(f"--weights: {e}") from None
    models = []
    for path in args.models:
        check_lm(path)
        if is_binary_lm(path):
            raise LMError(f"{path}: a KenLM binary; asr-lm mix reads ARPA files (mix the ARPA files, then "
                          "build_binary the result)")
        model = read_arpa(path)
        if not model or not model[0]:
            raise LMError(f"{path}: no 1-grams found; expected an ARPA file with a \\1-grams: section")
        models.append(model)
    check_writable(args.out, "ARPA output")
    mixed = mix_models(models, weights)
    write_arpa(mixed, args.out)
    print(f"wrote {args.out}: mix of {len(models)} models (weights {', '.join(f'{x:g}' for x in weights)}), "
          + ", ".join(f"{len(g)} {k}-grams" for k, g in enumerate(mixed, 1)))
    return 0


def _main_words(args) -> int:
    if not 0 < args.eos_prob < 1:
        raise UserError(f"--eos-prob {args.eos_prob}: expected a probability between 0 and 1")
    if args.word_counts:
        freqs, covered = read_word_counts(args.word_counts), None
        source = args.word_counts
    else:
        if args.top < 1:
            raise UserError(f"--top {args.top}: expected a positive number of words")
        freqs, covered = wordfreq_frequencies(args.lang, args.top)
        source = f"wordfreq ({args.lang}, top {args.top}, {100 * covered:.1f}% of running text)"
    vocab = vocab_from_options(args.chars, args.numbers)
    check_writable(args.out, "ARPA output")
    model, skipped = unigram_model(freqs, vocab, args.eos_prob, covered)
    write_arpa(model, args.out)
    dropped = f"; skipped {sum(skipped.values())} words: " + ", ".join(f"{n} {why}" for why, n in
                                                                       skipped.most_common()) if skipped else ""
    print(f"wrote {args.out}: unigram model of {len(model[0]) - 3} words from {source}{dropped}")
    return 0


def cli() -> None:
    sys.exit(run_cli(main))


if __name__ == "__main__":
    cli()
