import pytest

from asr.recognizer import Recognizer
from asr.text import DEFAULT_CHARS, Vocabulary
from conftest import tiny_recognizer


def test_default_vocabulary_is_blank_space_apostrophe_and_letters():
    v = Vocabulary()
    assert len(v) == 29 and v.blank == 0
    assert v.labels[:4] == ["<blank>", " ", "'", "a"] and v.labels[-1] == "z"
    assert v.encode("a z") == [3, 1, 28]


@pytest.mark.parametrize("text, expected", [
    ("Hello,   World!", "hello world"),
    ("  It’s 3 o'clock—fine… ", "it's three o'clock fine"),
    ("Café  NAÏVE", "cafe naive"),
    ("well-known/semi_colon;x", "well known semi colon x"),
    ("#$%@", ""),
    ("\tnew\nline ", "new line"),
])
def test_normalisation(text, expected):
    assert Vocabulary().normalize(text) == expected


def test_encode_decode_round_trip_keeps_repeats_and_skips_blanks():
    v = Vocabulary()
    ids = v.encode("Hello there")
    assert v.decode(ids) == "hello there"
    assert v.decode([0, *ids[:3], 0, 0]) == "hel"
    assert v.decode([v.encode("l")[0]] * 2) == "ll"  # collapsing is the decoder's job


def test_uppercase_vocabulary_uppercases_text():
    v = Vocabulary(" 'ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # deepspeech.pytorch's labels
    assert v.normalize("it's fine.") == "IT'S FINE"
    assert v.decode(v.encode("it's fine.")) == "IT'S FINE"


def test_vocabulary_without_space_drops_word_separators():
    v = Vocabulary("abc")
    assert v.normalize("a b-c, cab") == "abccab"
    assert v.encode("a b") == [1, 2]


def test_vocabulary_with_accented_letters_keeps_them():
    v = Vocabulary(" abcdefghijklmnopqrstuvwxyzéè")
    assert v.normalize("Été, CAFÉ à") == "été café a"


@pytest.mark.parametrize("chars", ["aa", "", ["ab", "c"]])
def test_bad_character_sets_are_rejected(chars):
    with pytest.raises(ValueError, match="distinct single characters"):
        Vocabulary(chars)


def test_equality_and_repr():
    assert Vocabulary() == Vocabulary(DEFAULT_CHARS) != Vocabulary("ab")
    assert repr(Vocabulary("ab")) == "Vocabulary('ab')"


def test_vocabulary_is_saved_in_the_checkpoint():
    vocab = Vocabulary(" abcxyz'")
    state = tiny_recognizer(vocab=vocab).describe()
    assert state["vocab"] == " abcxyz'"
    assert Recognizer.from_checkpoint(state).vocab == vocab


def test_numbers_in_digits_are_spelled_out_when_the_vocabulary_has_no_digits():
    v = Vocabulary()
    assert v.normalize("call 911 now") == "call nine hundred and eleven now"
    assert v.normalize("DIGIT 1, 3.5 and 1,000") == "digit one three point five and one thousand"
    assert Vocabulary(" abc0123456789").normalize("a 12 b") == "a 12 b"  # digits in the vocabulary stay


def test_numbers_can_be_spelt_kept_or_dropped_and_the_choice_travels_with_the_checkpoint():
    from collections import Counter

    digits = " abcdefghijklmnopqrstuvwxyz0123456789"
    assert Vocabulary(digits, "spell").normalize("call 911") == "call nine hundred and eleven"
    assert Vocabulary(digits, "keep").normalize("call 911") == "call 911"
    dropped = Counter()
    assert Vocabulary(numbers="drop").normalize("call 911 now, 3.5", dropped) == "call now"
    assert dropped == Counter({"1": 2, "9": 1, "3": 1, "5": 1})  # counted, as any other dropped character
    with pytest.raises(ValueError, match="numbers='keep' needs the digits 0-9"):
        Vocabulary(numbers="keep")
    with pytest.raises(ValueError, match="expected one of auto, spell, keep, drop"):
        Vocabulary(numbers="words")
    assert Vocabulary(numbers="drop") != Vocabulary() and repr(Vocabulary(numbers="drop")).endswith("numbers='drop')")
    state = tiny_recognizer(vocab=Vocabulary(numbers="drop")).describe()
    assert state["numbers"] == "drop" and Recognizer.from_checkpoint(state).vocab.normalize("a 1 b") == "a b"
    del state["numbers"]  # a checkpoint from before the option: numbers spelt out, as then
    assert Recognizer.from_checkpoint(state).vocab.normalize("a 1 b") == "a one b"


def test_the_commands_take_numbers_and_refuse_a_bad_choice_in_one_line(tmp_path, capsys):
    from asr.lm import main as lm_main
    from asr.utils import run_cli

    text = tmp_path / "t.txt"
    text.write_text("call 911 now\n")
    assert run_cli(lm_main, ["build", str(text), str(tmp_path / "lm.arpa"), "--order", "1", "--numbers", "drop"]) == 0
    arpa = (tmp_path / "lm.arpa").read_text()
    assert "\tcall" in arpa and "\tnow" in arpa and "nine" not in arpa
    assert run_cli(lm_main, ["build", str(text), str(tmp_path / "lm2.arpa"), "--numbers", "keep"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --chars") and "needs the digits 0-9" in err and len(err.splitlines()) == 1


def test_characters_outside_the_vocabulary_are_counted_not_lost_silently():
    from collections import Counter

    from asr.text import describe_dropped

    v = Vocabulary()
    dropped = Counter()
    assert v.normalize("café costs €5 #1 — ok", dropped) == "cafe costs five one ok"
    assert dropped == Counter({"€": 1, "#": 1})  # accents folded and dashes split: not dropped
    assert v.dropped_characters(["a € b", "€€ ¤"]) == Counter({"€": 3, "¤": 1})
    assert describe_dropped(Counter({"€": 3, "¤": 1})) == \
        "4 characters outside the vocabulary were dropped: '€' x3, '¤' x1"


def test_what_the_mutation_run_found_unpinned_in_text():
    from collections import Counter

    from asr.text import describe_dropped

    digits = Vocabulary(" abcdefghijklmnopqrstuvwxyz0123456789", "drop")
    assert digits.normalize("call 911 now") == "call now"  # drop means drop, even where digits are tokens
    assert Vocabulary(" abAB").normalize("aB Ab") == "aB Ab"  # a mixed-case vocabulary keeps case
    assert Vocabulary("ab").normalize("a b  ab") == "abab"  # no space token: words run together
    dropped = Counter()
    assert Vocabulary().encode("a€b", dropped) == [3, 4] and dropped == Counter({"€": 1})
    many = Counter({c: 1 for c in "#$%&*+<=>"})  # nine kinds, eight shown
    assert describe_dropped(many).endswith(" and 1 more kinds") and "more kinds" not in describe_dropped(many, 9)
