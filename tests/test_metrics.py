import pytest

from asr.metrics import ErrorRates, error_rates, word_edits


def test_word_and_character_error_rates_on_a_hand_computed_example():
    # "the cat sat" -> "the bat sat on": 1 substitution + 1 insertion over 3 words;
    # characters: c->b (1) + " on" inserted (3) over 11 characters.
    r = error_rates(["the cat sat"], ["the bat sat on"])
    assert (r.substitutions, r.deletions, r.insertions, r.words, r.utterances) == (1, 0, 1, 3, 1)
    assert r.wer == pytest.approx(2 / 3)
    assert r.cer == pytest.approx(4 / 11)


def test_rates_are_corpus_totals_not_averages_of_utterances():
    # utt 1: 1 deletion of 4 words; utt 2: 1 substitution of 1 word -> 2 / 5 (the mean would be 0.625)
    r = error_rates(["a b c d", "yes"], ["a b c", "no"])
    assert r.wer == pytest.approx(2 / 5)
    assert (r.substitutions, r.deletions, r.insertions, r.words) == (1, 1, 0, 5)
    assert r.cer == pytest.approx((2 + 3) / (7 + 3))  # " d" deleted; "yes" -> "no": 2 subs + 1 del


def test_perfect_and_empty_cases():
    assert error_rates(["a b"], ["a b"]).wer == 0.0
    empty_ref = error_rates([""], ["hello world"])  # every hypothesis word is an insertion
    assert (empty_ref.insertions, empty_ref.words, empty_ref.wer) == (2, 0, 2.0)
    empty_hyp = error_rates(["hello world"], [""])
    assert (empty_hyp.deletions, empty_hyp.wer, empty_hyp.cer) == (2, 1.0, 1.0)
    both = error_rates(["", " "], ["", ""])
    assert (both.wer, both.cer, both.utterances) == (0.0, 0.0, 2)
    assert error_rates([], []) == ErrorRates(0.0, 0.0, 0, 0, 0, 0, 0)
    with pytest.raises(ValueError):
        error_rates(["a"], [])


def test_summary_line_format():
    # 1 of 8 words wrong; 1 character inserted into 39
    r = error_rates(["one two three four five six seven eight"], ["one two three four five six seven eighth"])
    assert r.summary() == "WER 12.50% CER 2.56% (1 utterances)"


def test_align_words_ops():
    assert word_edits("the cat sat down", "the bat sat down now") == [
        {"op": "equal", "ref": "the", "hyp": "the"},
        {"op": "substitute", "ref": "cat", "hyp": "bat"},
        {"op": "equal", "ref": "sat", "hyp": "sat"},
        {"op": "equal", "ref": "down", "hyp": "down"},
        {"op": "insert", "ref": "", "hyp": "now"},
    ]
    assert word_edits("a b c", "a c") == [{"op": "equal", "ref": "a", "hyp": "a"},
                                           {"op": "delete", "ref": "b", "hyp": ""},
                                           {"op": "equal", "ref": "c", "hyp": "c"}]
    assert word_edits("", "x y") == [{"op": "insert", "ref": "", "hyp": "x"},
                                      {"op": "insert", "ref": "", "hyp": "y"}]
    assert word_edits("x", "") == [{"op": "delete", "ref": "x", "hyp": ""}]
    assert word_edits("", "") == []
