"""asr.align: word times and confidences from CTC posteriors whose alignment is known."""

import math

import pytest
import torch

from asr.align import Word, align_words
from asr.text import Vocabulary

VOCAB = Vocabulary()  # blank 0, space 1, apostrophe 2, a-z 3..28


def _posteriors(path: str, p: float = 0.9) -> torch.Tensor:
    """Log-posteriors ``(frames, vocab)`` that put ``p`` on one symbol a frame: ``path``'s
    characters, ``_`` for blank, the rest of the mass spread over the other symbols."""
    probs = torch.full((len(path), len(VOCAB)), (1 - p) / (len(VOCAB) - 1))
    for t, c in enumerate(path):
        probs[t, VOCAB.blank if c == "_" else VOCAB.id(c)] = p
    return probs.log()


def test_words_run_from_their_first_to_their_last_character_step():
    #        0123456789...
    path = "__hi___ _yo__"  # 'hi' at steps 2-3, space at 7, 'yo' at 9-10
    words = align_words(_posteriors(path), VOCAB.encode("hi yo"), VOCAB, frame_shift=0.03, offset=1.5)
    assert [w.word for w in words] == ["hi", "yo"]
    assert words[0].start == pytest.approx(1.5 + 2 * 0.03) and words[0].end == pytest.approx(1.5 + 4 * 0.03)
    assert words[1].start == pytest.approx(1.5 + 9 * 0.03) and words[1].end == pytest.approx(1.5 + 11 * 0.03)
    assert all(w.confidence == pytest.approx(0.9, abs=1e-5) for w in words)


def test_a_character_held_over_several_steps_spans_them_all():
    words = align_words(_posteriors("_ggg_o_"), VOCAB.encode("go"), VOCAB, frame_shift=0.1)
    (go,) = words
    assert (go.start, go.end) == (pytest.approx(0.1), pytest.approx(0.6))


def test_confidence_is_the_mean_over_tokens_of_their_mean_posterior():
    logp = _posteriors("_ab_")
    logp[1] = torch.full((len(VOCAB),), 0.5 / (len(VOCAB) - 1)).log()
    logp[1, VOCAB.id("a")] = math.log(0.5)  # 'a' at 0.5, 'b' at 0.9: the word's confidence is 0.7
    (word,) = align_words(logp, VOCAB.encode("ab"), VOCAB, frame_shift=0.01)
    assert word.confidence == pytest.approx(0.7, abs=1e-5)


def test_a_doubled_letter_needs_a_blank_between_and_otherwise_is_spread_evenly():
    aligned = align_words(_posteriors("_l_l_"), VOCAB.encode("ll"), VOCAB, frame_shift=0.1)
    assert [(w.word, round(w.start, 3), round(w.end, 3)) for w in aligned] == [("ll", 0.1, 0.4)]
    # three frames cannot hold "a b" + "c" with its repeat rule: the words share the time evenly
    spread = align_words(_posteriors("abc"), VOCAB.encode("ab cc"), VOCAB, frame_shift=0.2, offset=1.0)
    assert [(w.word, round(w.start, 3), round(w.end, 3), w.confidence) for w in spread] == \
        [("ab", 1.0, 1.3, 0.0), ("cc", 1.3, 1.6, 0.0)]


def test_nothing_to_align_gives_no_words_and_blanks_are_ignored():
    assert align_words(_posteriors("___"), [], VOCAB, frame_shift=0.1) == []
    assert align_words(_posteriors("___"), [VOCAB.blank], VOCAB, frame_shift=0.1) == []
    assert align_words(_posteriors("")[:0], VOCAB.encode("a"), VOCAB, frame_shift=0.1) == []
    with_blank = align_words(_posteriors("_a_"), [VOCAB.blank, *VOCAB.encode("a")], VOCAB, frame_shift=0.1)
    assert [w.word for w in with_blank] == ["a"]


def test_a_vocabulary_without_a_space_gives_one_word():
    letters = Vocabulary("abc")
    logp = torch.full((4, 4), 0.1 / 3).log()
    for t, c in enumerate("_ab_"):
        logp[t, 0 if c == "_" else letters.id(c)] = math.log(0.9)
    (word,) = align_words(logp, letters.encode("ab"), letters, frame_shift=0.5)
    assert (word.word, word.start, word.end) == ("ab", 0.5, 1.5)


def test_word_to_json_rounds_times_to_milliseconds():
    assert Word("hi", 1.23456, 2.0004, 0.987654).to_json() == \
        {"word": "hi", "start": 1.235, "end": 2.0, "confidence": 0.9877}


@pytest.mark.parametrize("path,text,aligned", [
    ("l_l", "ll", True),  # a doubled letter fits exactly: one frame each plus the blank between
    ("ll", "ll", False),  # one frame short
    ("lal", "lal", True),  # letters two apart are not a repeat
    ("ab", "abc", False),
])
def test_the_frames_needed_are_the_tokens_plus_one_blank_per_repeat(path, text, aligned):
    words = align_words(_posteriors(path), VOCAB.encode(text), VOCAB, frame_shift=0.1)
    assert [w.word for w in words] == [text]
    assert (words[0].confidence > 0) == aligned  # a spread word has confidence 0
