"""CTC beam search with an optional KenLM n-gram model, on flashlight-text's decoder (the
decoder behind torchaudio's ``ctc_decoder``; KenLM is built into its wheel, so it installs
with plain pip).

Two modes:

* **lexicon** (``lexicon=`` a file, or a *word* LM without one, whose 1-grams then serve as
  the lexicon): the output is a sequence of lexicon words, scored by the word LM. A word
  ends with a space token (a CTC model repeats a word's last letter over several frames,
  and flashlight only stays inside a word while it has not ended), so a space frame is
  appended to each utterance to end its last word; it is not part of the output.
* **lexicon-free** (no lexicon; no LM, or a *token* LM: characters from ``asr-lm build
  --unit char``, or a subword model's pieces from ``--unit piece``): any token sequence,
  the LM scoring each token, ``|`` for the space.

A subword model (:mod:`asr.subword`) decodes the same way: its pieces spell the lexicon's
words, and its space ends them. A token LM must be of the model's own tokens (checked for
ARPA files): a character LM does not fit a subword model, nor one model's pieces another's.

A word LM's scores are log10 (KenLM), the acoustic ones natural logs: ``lm_weight`` absorbs
the factor. ``word_score`` is added per word (per space in lexicon-free mode).

``Hypothesis.timesteps`` are the frames where flashlight's best path emits each token.
When two paths merge, flashlight keeps one parent, so a frame may differ by one or two
from the best alignment (and between runs); tokens, text and score do not.

Most CTC frames are blank with near certainty. Before the search, each run of frames whose
blank probability exceeds ``blank_skip`` (0.99 by default) is cut to its first frame: a
blank still separates the letters on either side, the search visits 29-53% fewer frames,
and timesteps are given in the original frames; the score counts the dropped frames as
blank (the README gives the measurement behind the default).

flashlight decodes one utterance at a time and holds the GIL (a thread pool gains
nothing), so a batch of four or more is spread over worker processes forked from this one,
which share the loaded LM copy-on-write.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import weakref
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flashlight.lib.text.decoder import (CriterionType, LexiconDecoder, LexiconDecoderOptions,
                                         LexiconFreeDecoder, LexiconFreeDecoderOptions, SmearingMode, Trie,
                                         ZeroLM)
from flashlight.lib.text.dictionary import Dictionary

from asr.greedy import Hypothesis, penalize_blank
from asr.arpa import SIL, UNK, LMError, arpa_unigrams, check_lm, is_binary_lm
from asr.beam_flags import check_beam_flags
from asr.text import Vocabulary
from asr.utils import UserError, text_lines


class LexiconError(UserError):
    """A lexicon file that cannot be used."""


def _spell(chars, vocab: Vocabulary) -> list[int] | None:
    """Vocabulary ids of ``chars``, each normalised as transcripts are (so LibriSpeech's
    upper-case LM and lexicon spell with a lowercase vocabulary), or None if one is missing.
    A subword vocabulary spells the word they make with its own pieces."""
    if vocab.units == "subword":
        return vocab.spell(vocab.normalize("".join(chars)))
    ids = []
    for c in chars:
        c = c if c in vocab else vocab.normalize(c)
        if c == " " or c not in vocab:
            return None
        ids.append(vocab.id(c))
    return ids or None


def read_lexicon(path: str | os.PathLike, vocab: Vocabulary) -> dict[str, list[list[int]]]:
    """Read a lexicon: a word a line, then its spelling as space-separated tokens
    (``hello h e l l o``, flashlight's and torchaudio's format; a trailing ``|`` is
    ignored), or as one string (``hello hello``), or nothing (spelled as written). For a
    subword model (:mod:`asr.subword`) the spelling is ignored: its own pieces spell each word.

    Returns
    -------
    dict
        word -> list of spellings, each a list of vocabulary ids.
    """
    path = Path(path)
    if not path.is_file():
        raise LexiconError(f"--lexicon {path}: file not found; expected a word and its spelling a line")
    out: dict[str, list[list[int]]] = {}
    for lineno, line in enumerate(text_lines(path, "lexicon"), 1):
        parts = line.split()
        if not parts:
            continue
        word, spelling = parts[0], parts[1:]
        if vocab.units == "subword":  # the model's own pieces spell the word (_spell joins its letters)
            spelling = list(word)
        elif len(spelling) == 1:
            spelling = list(spelling[0])
        spelling = [t for t in spelling or list(word) if t != SIL]
        ids = _spell(spelling, vocab) if all(len(t) == 1 for t in spelling) else None
        if ids is None:
            bad = next((t for t in spelling if _spell([t], vocab) is None), "")
            raise LexiconError(f"{path}:{lineno}: spelling of {word!r} uses {bad!r}, which is not in the "
                               f"model's vocabulary {''.join(getattr(vocab, 'chars', vocab).tokens)!r}; "
                               "fix or drop the line")
        if ids not in out.setdefault(word, []):
            out[word].append(ids)
    if not out:
        raise LexiconError(f"--lexicon {path}: no words; expected a word and its spelling a line")
    return out


def lexicon_from_words(words, vocab: Vocabulary) -> dict[str, list[list[int]]]:
    """Spell each word (an LM's 1-grams) with ``vocab``; words it cannot spell are left out."""
    out = {}
    for w in words:
        ids = _spell(w, vocab) if w not in ("<s>", "</s>", UNK) else None
        if ids is not None:
            out[w] = [ids]
    return out


@dataclass
class _Core:
    """What every decoder of one (vocab, LM, lexicon) shares: built once, inherited by workers."""

    labels: list[str]
    sil: int
    lm: object
    word_dict: Dictionary | None
    trie: Trie | None
    unk: int


class _Workers:
    """The process pool of a decoder and its reweighted copies, started on first use."""

    pool: ProcessPoolExecutor | None = None
    finalizer: weakref.finalize | None = None


_WORKER_CORE: _Core | None = None


def _set_worker_core(core: _Core) -> None:
    global _WORKER_CORE
    _WORKER_CORE = core
    torch.set_num_threads(1)


def skip_blank_runs(a: np.ndarray, blank_skip: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Cut each run of frames whose blank (column 0) probability exceeds ``blank_skip`` to
    its first frame.

    Parameters
    ----------
    a : ndarray
        ``(frames, vocab)`` log-probabilities.
    blank_skip : float
        Probability in [0.5, 1]; 1 keeps every frame.

    Returns
    -------
    kept : ndarray
        ``(kept_frames, vocab)``, contiguous.
    index : ndarray
        ``(kept_frames,)`` each kept frame's index in ``a``.
    dropped : float
        Sum of the dropped frames' blank log-probabilities.
    """
    if blank_skip < 1.0 and len(a) > 1:
        blank = a[:, 0] > math.log(blank_skip)
        drop = blank[1:] & blank[:-1]  # (frames - 1,) a blank frame right after another one
        if drop.any():
            index = np.flatnonzero(np.concatenate(([True], ~drop)))
            return a[index], index, float(a[1:, 0][drop].sum())
    return a, np.arange(len(a)), 0.0


def _decode_many(core: _Core, settings: tuple, arrays: list[np.ndarray]) -> list[list[tuple]]:
    """Decode (frames, vocab) float32 arrays. Each result: up to ``nbest`` distinct
    ``(tokens, timesteps, words, score)``, best first (tokens CTC-collapsed)."""
    beam_size, beam_size_token, beam_threshold, lm_weight, word_score, nbest, blank_skip = settings
    n_tokens = len(core.labels)
    beam_size_token = min(beam_size_token, n_tokens) if beam_size_token > 0 else n_tokens
    if core.trie is not None:
        opt = LexiconDecoderOptions(beam_size=beam_size, beam_size_token=beam_size_token, beam_threshold=beam_threshold,
                                    lm_weight=lm_weight, word_score=word_score, unk_score=-math.inf,
                                    sil_score=0.0, log_add=False, criterion_type=CriterionType.CTC)
        dec = LexiconDecoder(opt, core.trie, core.lm, core.sil, 0, core.unk, [], False)
    else:
        opt = LexiconFreeDecoderOptions(beam_size=beam_size, beam_size_token=beam_size_token,
                                        beam_threshold=beam_threshold,
                                        lm_weight=lm_weight, sil_score=word_score, log_add=False,
                                        criterion_type=CriterionType.CTC)
        dec = LexiconFreeDecoder(opt, core.lm, core.sil, 0, [])
    out = []
    end = np.full((1, n_tokens), -1e4, dtype=np.float32)  # a final space, to end the last word
    end[0, core.sil] = 0.0
    for a in arrays:
        a, index, dropped = skip_blank_runs(a, blank_skip)
        frames = a.shape[0]
        if core.trie is not None and frames:
            a = np.concatenate([a, end])
        nbest_list, seen = [], set()
        for r in dec.decode(a.ctypes.data, a.shape[0], a.shape[1]) if frames else ():
            # flashlight's path has one extra step before the first frame and one after the last
            path = r.tokens[1:frames + 1]
            tokens, steps, prev = [], [], 0
            for t, tok in enumerate(path):
                if tok != 0 and tok != prev:
                    tokens.append(tok)
                    steps.append(int(index[t]))
                prev = tok
            words = tuple(w for w in r.words if w >= 0)
            key = words if core.trie is not None else tuple(" ".join(
                "".join(core.labels[t] for t in tokens).split(SIL)).split())
            if key not in seen:
                seen.add(key)
                nbest_list.append((tokens, steps, words, r.score + dropped))
                if len(nbest_list) == nbest:
                    break
        out.append(nbest_list)
    return out


def _worker_decode(settings: tuple, arrays: list[np.ndarray]) -> list[list[tuple]]:
    return _decode_many(_WORKER_CORE, settings, arrays)


class BeamSearchDecoder:
    """CTC beam search with an optional n-gram LM and lexicon (see the module docstring).

    Parameters
    ----------
    vocab : Vocabulary
        The acoustic model's vocabulary (blank 0, must contain the space).
    lm : path, optional
        KenLM ARPA or binary file; a word LM (lexicon mode) or a token LM (characters or
        the model's pieces) with ``|`` for the space (lexicon-free mode).
    lexicon : path, optional
        A word and its spelling a line; restricts the output to these words.
    beam_size, beam_threshold : int, float
        Hypotheses kept per frame; hypotheses scoring this far below the best are pruned
        (the README gives the measurement behind the default of 10).
    lm_weight, word_score : float
        LM weight (alpha) and word insertion score (beta).
    nbest : int
        Hypotheses returned per utterance (distinct texts, best first).
    num_threads : int
        Worker processes for a batch; 0 means one per available CPU core.
    beam_size_token : int
        Tokens tried per frame, the most likely first; 0 means all. CTC posteriors are
        peaky, so a few suffice (the README gives the measurement behind the default of 8).
    blank_skip : float
        Runs of frames whose blank probability exceeds this are cut to one frame before
        the search (see the module docstring); 1 keeps every frame.
    blank_penalty : float
        Subtracted from every frame's blank log-probability before anything else (as
        :class:`asr.greedy.GreedyDecoder`'s); ``blank_skip`` then looks at the result.
    """

    def __init__(self, vocab: Vocabulary, lm: str | os.PathLike | None = None,
                 lexicon: str | os.PathLike | None = None, beam_size: int = 50, beam_threshold: float = 10.0,
                 lm_weight: float = 0.5, word_score: float = 0.0, nbest: int = 1, num_threads: int = 0,
                 beam_size_token: int = 8, blank_skip: float = 0.99, blank_penalty: float = 0.0):
        if " " not in vocab:
            raise UserError(f"beam search needs a space in the vocabulary to separate words; "
                            f"this model's is {''.join(vocab.tokens)!r}")
        if SIL in vocab:
            raise UserError(f"the vocabulary contains {SIL!r}, which the beam decoder uses for the space")
        check_beam_flags(beam_size, beam_size_token, blank_skip, nbest, blank_penalty)
        self.vocab = vocab
        self.blank_penalty = float(blank_penalty)
        self.beam_size, self.beam_threshold = int(beam_size), float(beam_threshold)
        self.beam_size_token, self.blank_skip = int(beam_size_token), float(blank_skip)
        self.lm_weight, self.word_score = float(lm_weight), float(word_score)
        self.nbest = int(nbest)
        self.num_threads = num_threads if num_threads > 0 else (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
        self._core = self._build(vocab, lm, lexicon)
        self._workers = _Workers()  # shared with reweighted copies

    @property
    def lexicon_mode(self) -> bool:
        return self._core.trie is not None

    @staticmethod
    def _build(vocab: Vocabulary, lm, lexicon) -> _Core:
        labels = ["<blank>", *(SIL if t == " " else t for t in vocab.tokens)]
        sil = labels.index(SIL)
        token_lm, unigrams = False, None
        if lm is not None:
            lm = str(check_lm(lm))
            unigrams = None if is_binary_lm(lm) else arpa_unigrams(lm)  # read once, used below
            token_lm = _is_token_lm(lm, unigrams)
            if token_lm and unigrams is not None:
                _check_token_lm(lm, unigrams, labels, vocab)
        lex = None
        if lexicon is not None:
            if token_lm:
                raise UserError(f"--lm {lm} is a token LM (characters or pieces), which decodes lexicon-free: "
                                "drop --lexicon, or build a word LM (asr-lm build --unit word)")
            lex = read_lexicon(lexicon, vocab)
        elif lm is not None and not token_lm:
            if unigrams is None:
                raise UserError(f"--lm {lm} is a binary word LM, whose word list cannot be read: "
                                "pass --lexicon, or use the ARPA file")
            lex = lexicon_from_words(unigrams, vocab)
            if not lex:
                raise LMError(f"--lm {lm}: none of its words can be spelled with the vocabulary "
                              f"{''.join(vocab.tokens)!r}")
        if lex is None:  # lexicon-free: the LM's words are the tokens
            word_dict = Dictionary([*labels, UNK]) if lm is not None else None
            return _Core(labels, sil, _load_kenlm(lm, word_dict) if lm else ZeroLM(), word_dict, None, -1)
        word_dict = Dictionary([*lex, UNK])
        lm_obj = _load_kenlm(lm, word_dict) if lm else ZeroLM()
        trie = Trie(len(labels), sil)
        start = lm_obj.start(False)
        for word, spellings in lex.items():
            idx = word_dict.get_index(word)
            score = lm_obj.score(start, idx)[1]
            for ids in spellings:  # a word ends with a space (CTC repeats its last letter)
                trie.insert([*ids, sil], idx, score)
        trie.smear(SmearingMode.MAX)
        return _Core(labels, sil, lm_obj, word_dict, trie, word_dict.get_index(UNK))

    def reweighted(self, lm_weight: float, word_score: float) -> "BeamSearchDecoder":
        """A copy with other weights that shares this decoder's LM, lexicon and workers."""
        new = object.__new__(BeamSearchDecoder)
        new.__dict__.update(self.__dict__)
        new.lm_weight, new.word_score = float(lm_weight), float(word_score)
        return new

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[list[Hypothesis]]:
        """N-best lists for a batch.

        Parameters
        ----------
        log_probs : Tensor
            ``(batch, frames, vocab)`` CTC log-probabilities.
        lengths : Tensor
            ``(batch,)`` valid frames of each row.
        """
        if log_probs.dim() != 3 or log_probs.shape[-1] != len(self.vocab):
            raise ValueError(f"log_probs must be (batch, frames, {len(self.vocab)}), got {tuple(log_probs.shape)}")
        lp = log_probs.detach().float().cpu()
        return self.decode_list([lp[b, :n] for b, n in enumerate(lengths.cpu().tolist())])

    def decode_list(self, log_probs: list[torch.Tensor]) -> list[list[Hypothesis]]:
        """N-best lists for a list of ``(frames, vocab)`` log-probability tensors."""
        arrays = [np.ascontiguousarray(penalize_blank(x.detach().float().cpu(), self.vocab.blank,
                                                      self.blank_penalty).numpy(), dtype=np.float32)
                  for x in log_probs]
        settings = (self.beam_size, self.beam_size_token, self.beam_threshold, self.lm_weight, self.word_score,
                    self.nbest, self.blank_skip)
        if self.num_threads <= 1 or len(arrays) < 4 or "fork" not in multiprocessing.get_all_start_methods():
            results = _decode_many(self._core, settings, arrays)
        else:
            pool = self._get_pool()
            # longest first, dealt round-robin, so the workers finish together
            order = sorted(range(len(arrays)), key=lambda i: -arrays[i].shape[0])
            chunks = [order[w::self.num_threads * 2] for w in range(self.num_threads * 2)]
            futures = [pool.submit(_worker_decode, settings, [arrays[i] for i in c]) for c in chunks if c]
            results = [None] * len(arrays)
            for c, fut in zip([c for c in chunks if c], futures):
                for i, r in zip(c, fut.result()):
                    results[i] = r
        return [self._hypotheses(r) for r in results]

    def _get_pool(self) -> ProcessPoolExecutor:
        workers = self._workers
        if workers.pool is None:
            workers.pool = ProcessPoolExecutor(self.num_threads, mp_context=multiprocessing.get_context("fork"),
                                               initializer=_set_worker_core, initargs=(self._core,))
            # shut the workers down when the last decoder sharing them goes, not concurrently
            # with the interpreter's exit (a race in Python 3.11's concurrent.futures)
            workers.finalizer = weakref.finalize(workers, workers.pool.shutdown, True, cancel_futures=True)
        return workers.pool

    def close(self) -> None:
        """Stop the worker processes (also done when the decoder is garbage-collected)."""
        if self._workers.pool is not None:
            self._workers.finalizer()
            self._workers.pool = None

    def _hypotheses(self, results: list[tuple]) -> list[Hypothesis]:
        out = []
        for tokens, steps, words, score in results:
            if self.lexicon_mode:
                text = self.vocab.normalize(" ".join(self._core.word_dict.get_entry(w) for w in words))
            else:
                text = " ".join(self.vocab.decode(tokens).split())
            out.append(Hypothesis(text, tokens, steps, float(score)))
        return out or [Hypothesis("")]


def _load_kenlm(path: str, word_dict: Dictionary):
    from flashlight.lib.text.decoder.kenlm import KenLM

    try:
        return KenLM(path, word_dict)
    except Exception as e:  # KenLM's own message names the line it could not read
        raise LMError(f"--lm {path}: KenLM cannot load it ({str(e).strip().splitlines()[0]})") from None


def _is_token_lm(path: str, unigrams) -> bool:
    """A token LM (characters or pieces) knows ``|`` (the space); a word LM does not.
    ``unigrams``: an ARPA file's 1-grams, or None for a binary file (asked through KenLM)."""
    if unigrams is not None:
        return SIL in unigrams
    word_dict = Dictionary([SIL, UNK])
    lm = _load_kenlm(path, word_dict)
    start = lm.start(False)
    return lm.score(start, 0)[1] != lm.score(start, 1)[1]


def _check_token_lm(path: str, unigrams, labels: list[str], vocab: Vocabulary) -> None:
    """Refuse an ARPA token LM (its 1-grams ``unigrams``) whose tokens are not the model's
    outputs: a character LM for a subword model, or pieces of another model."""
    tokens = set(unigrams) - {"<s>", "</s>", UNK}
    how = ("asr-lm build --unit piece --model <this checkpoint>" if vocab.units == "subword"
           else "asr-lm build --unit char")
    if vocab.units == "subword" and all(len(t) == 1 for t in tokens):
        raise UserError(f"--lm {path} is a character LM, and this model's outputs are subword units: build a "
                        f"piece LM ({how}) or use a word LM (asr-lm build --unit word), with or without --lexicon")
    foreign = sorted(tokens - set(labels))
    if foreign:
        raise UserError(f"--lm {path}: {len(foreign)} of its {len(tokens)} tokens are not this model's outputs "
                        f"(e.g. {', '.join(map(repr, foreign[:3]))}); build the LM for this model ({how}) or "
                        "use a word LM (asr-lm build --unit word)")
