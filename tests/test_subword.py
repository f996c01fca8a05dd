"""Subword units (asr.subword): learnt within words, saved in checkpoints and exports,
trained on, and decoded by the greedy and beam decoders with a word lexicon or LM."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from asr.beam import BeamSearchDecoder, read_lexicon
from asr.checkpoint import load_checkpoint
from asr.data import DataConfig, Utterance, drop_unalignable
from asr.decoding import GreedyDecoder
from asr.export import _vocab_from_meta, _vocab_meta
from asr.arpa import LMError, arpa_unigrams
from asr.lm import build_arpa
from asr.lm import main as lm_main
from asr.recognizer import Recognizer
from asr.subword import SubwordVocabulary, train_subwords, vocabulary_from_state, vocabulary_state
from asr.text import Vocabulary
from asr.train import TrainConfig, train
from asr.transcribe import main as transcribe_main
from asr.utils import UserError
from test_train import tiny_config, write_tone_corpus

TEXTS = ["Stop now!", "go left", "stop the music", "start now", "go home now", "stop", "play music now",
         "the music stopped", "start the game", "go to the left now", "home, home, home"] * 3


@pytest.fixture(scope="module")
def vocab() -> SubwordVocabulary:
    return train_subwords(TEXTS, 40)


def test_pieces_stay_inside_words_and_spell_every_word_back(vocab):
    assert vocab.units == "subword" and vocab.tokens[0] == " " and vocab.id(" ") == 1
    assert all(" " not in t and "\u2581" not in t for t in vocab.tokens[1:])
    assert set("abcdefghijklmnopqrstuvwxyz'") <= set(vocab.tokens)  # every character is a piece
    assert len(vocab) == len(vocab.tokens) + 1 <= 41
    assert any(len(t) > 1 for t in vocab.tokens)  # and some pieces are longer
    for text in [*TEXTS, "zebra quiz, don't jump"]:  # unseen words are spelt with shorter pieces
        ids = vocab.encode(text)
        assert vocab.blank not in ids and vocab.decode(ids) == vocab.normalize(text)
    # fewer tokens than characters on the training words
    assert sum(map(len, map(vocab.encode, TEXTS))) < 0.8 * sum(map(len, map(vocab.normalize, TEXTS)))


def test_normalisation_and_dropped_characters_are_the_character_vocabulary_s(vocab):
    chars = Vocabulary()
    for text in ["STOP, now!", "call 911", "caf\u00e9 \u20ac5"]:
        assert vocab.normalize(text) == chars.normalize(text)
    dropped = Counter()
    vocab.encode("go \u20ac now", dropped)
    assert dropped == Counter({"\u20ac": 1})


def test_training_is_deterministic_and_checked(vocab):
    assert train_subwords(TEXTS, 40) == vocab
    assert train_subwords(TEXTS, 40, model_type="bpe").tokens != vocab.tokens
    with pytest.raises(ValueError, match="too few"):
        train_subwords(TEXTS, 20)
    with pytest.raises(ValueError, match="no words"):
        train_subwords(["", "?!"], 40)
    with pytest.raises(ValueError, match="subword type"):
        train_subwords(TEXTS, 40, model_type="word")
    with pytest.raises(ValueError, match="need a space"):
        SubwordVocabulary(vocab.model, "abcdefghijklmnopqrstuvwxyz'")
    with pytest.raises(ValueError, match="not a sentencepiece model"):
        SubwordVocabulary(b"not a model")


def test_checkpoint_and_export_metadata_rebuild_the_same_vocabulary(vocab):
    state = vocabulary_state(vocab)
    assert state["subword_model"].dtype == torch.uint8
    assert vocabulary_from_state(state) == vocab
    meta = json.loads(json.dumps(_vocab_meta(vocab)))  # an export's metadata is JSON
    assert _vocab_from_meta(meta) == vocab
    chars = Vocabulary("abc ", numbers="drop")
    assert vocabulary_from_state(vocabulary_state(chars)) == chars


def test_alignability_counts_pieces_not_characters(vocab):
    text = "stop the music"
    pieces, letters = len(vocab.encode(text)), len(vocab.normalize(text)) + 1  # "music" has no double letter
    assert pieces < letters
    utts = [Utterance("u", "u.wav", 1.0, text)]
    # an encoder with room for the pieces but not for the characters keeps it only with subwords
    assert drop_unalignable(utts, vocab, lambda d: pieces) == utts
    assert drop_unalignable(utts, Vocabulary(), lambda d: pieces) == []


def spell_ids(ids: list[int], n: int, rival: tuple[int, int, float] | None = None) -> torch.Tensor:
    """Log-probs ``(steps, n)`` whose argmax path emits ``ids``, each for 2 steps then a
    blank; ``rival = (position, id, margin)`` makes another id win at one position by ``margin``."""
    rows = []
    for i, t in enumerate(ids):
        for _ in range(2):
            row = torch.full((n,), -12.0)
            row[t], row[0] = 0.0, -3.0
            if rival and rival[0] == i:
                row[rival[1]] = rival[2]  # above the true piece's 0
            rows.append(row)
        blank = torch.full((n,), -12.0)
        blank[0] = 0.0
        rows.append(blank)
    return torch.log_softmax(torch.stack(rows), -1)


def test_greedy_and_beam_decoders_read_pieces_and_a_word_lm_fixes_a_wrong_piece(vocab, tmp_path):
    ids = vocab.encode("stop now")
    wrong = next(i for i in range(2, len(vocab)) if i != ids[0] and
                 vocab.decode([i, *ids[1:ids.index(1)]]) not in {w for t in TEXTS for w in vocab.normalize(t).split()})
    lp = spell_ids(ids, len(vocab), rival=(0, wrong, 1.0))[None]
    n = torch.tensor([lp.shape[1]])
    greedy = GreedyDecoder(vocab).decode(lp, n)[0][0].text
    assert greedy != "stop now" and greedy.endswith(" now")
    (tmp_path / "text.txt").write_text("\n".join(vocab.normalize(t) for t in TEXTS) + "\n")
    build_arpa(tmp_path / "text.txt", tmp_path / "words.arpa", order=2, unit="word")
    dec = BeamSearchDecoder(vocab, lm=tmp_path / "words.arpa", lm_weight=1.0, num_threads=1)
    assert dec.lexicon_mode and dec.decode(lp, n)[0][0].text == "stop now"
    # a lexicon's words are spelt with the model's pieces, whatever spelling the file gives
    (tmp_path / "lexicon.txt").write_text("stop s t o p |\nnow\nleft l e f t\n")
    lexicon = read_lexicon(tmp_path / "lexicon.txt", vocab)
    assert lexicon["stop"] == [vocab.spell("stop")] and lexicon["left"] == [vocab.spell("left")]
    dec = BeamSearchDecoder(vocab, lexicon=tmp_path / "lexicon.txt", num_threads=1)
    assert dec.decode(lp, n)[0][0].text == "stop now"
    # lexicon-free without an LM: the pieces as greedy reads them
    assert BeamSearchDecoder(vocab, num_threads=1).decode(lp, n)[0][0].text == greedy


def test_a_piece_lm_fixes_a_wrong_piece_and_still_writes_words_it_never_saw(vocab, tmp_path):
    (tmp_path / "text.txt").write_text("\n".join(TEXTS) + "\n")
    build_arpa(tmp_path / "text.txt", tmp_path / "pieces.arpa", order=4, unit="piece", vocab=vocab)
    unigrams = set(arpa_unigrams(tmp_path / "pieces.arpa")) - {"<s>", "</s>", "<unk>"}
    assert "|" in unigrams and unigrams <= {"|", *vocab.tokens[1:]} and any(len(t) > 1 for t in unigrams)
    dec = BeamSearchDecoder(vocab, lm=tmp_path / "pieces.arpa", lm_weight=2.0, num_threads=1)
    assert not dec.lexicon_mode
    ids = vocab.encode("stop now")
    wrong = next(i for i in range(2, len(vocab)) if i != ids[0] and
                 vocab.decode([i, *ids[1:ids.index(1)]]) not in {w for t in TEXTS for w in vocab.normalize(t).split()})
    lp = spell_ids(ids, len(vocab), rival=(0, wrong, 1.0))[None]
    n = torch.tensor([lp.shape[1]])
    assert GreedyDecoder(vocab).decode(lp, n)[0][0].text != "stop now"
    assert dec.decode(lp, n)[0][0].text == "stop now"
    # lexicon-free: a word in no transcript is still written when the model hears it clearly,
    # where the word LM's lexicon can only swap it for a word it knows
    lp = spell_ids(vocab.encode("stop zebra"), len(vocab))[None]
    n = torch.tensor([lp.shape[1]])
    assert dec.decode(lp, n)[0][0].text == "stop zebra"
    build_arpa(tmp_path / "text.txt", tmp_path / "words.arpa", order=2, unit="word")
    words = BeamSearchDecoder(vocab, lm=tmp_path / "words.arpa", lm_weight=2.0, num_threads=1)
    assert "zebra" not in words.decode(lp, n)[0][0].text


def test_token_lms_of_other_units_are_refused(vocab, tmp_path):
    (tmp_path / "text.txt").write_text("\n".join(TEXTS) + "\n")
    build_arpa(tmp_path / "text.txt", tmp_path / "chars.arpa", order=3, unit="char")
    with pytest.raises(UserError, match="character LM.*subword units.*--unit piece.*word LM"):
        BeamSearchDecoder(vocab, lm=tmp_path / "chars.arpa", num_threads=1)
    other = train_subwords([*TEXTS, "zebras quizzing jumpers"] * 2, 48)
    assert other.tokens != vocab.tokens
    build_arpa(tmp_path / "text.txt", tmp_path / "other.arpa", order=3, unit="piece", vocab=other)
    with pytest.raises(UserError, match="not this model's outputs"):
        BeamSearchDecoder(vocab, lm=tmp_path / "other.arpa", num_threads=1)
    with pytest.raises(UserError, match="not this model's outputs.*--unit char"):
        BeamSearchDecoder(Vocabulary(), lm=tmp_path / "other.arpa", num_threads=1)
    with pytest.raises(LMError, match="subword model"):
        build_arpa(tmp_path / "text.txt", tmp_path / "x.arpa", unit="piece", vocab=Vocabulary())


def test_config_checks():
    for data, match in [(DataConfig(subwords=-1), "data.subwords=-1"),
                        (DataConfig(subwords=64, subword_type="word"), "subword_type"),
                        (DataConfig(subwords=64, chars="abc"), "needs a space")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(data=data)


def test_training_on_subwords_writes_a_checkpoint_that_describes_them(tmp_path, capsys):
    train_m, dev_m = write_tone_corpus(tmp_path / "train", 16, seed=1), write_tone_corpus(tmp_path / "dev", 4, seed=2)
    cfg = tiny_config(train_m, dev_m, tmp_path / "run", epochs=1)
    cfg.data.subwords = 40
    train(cfg)
    rec = Recognizer.from_checkpoint(tmp_path / "run" / "best.pt")
    assert rec.vocab.units == "subword" and len(rec.vocab) == rec.model.classifier.out_features
    words = {"ab", "cd", "ef", "gh", "ij", "kl"}  # write_tone_corpus's words
    assert sum(len(rec.vocab.spell(w)) for w in words) < 2 * len(words)  # some of them one piece
    assert rec.vocab == train_subwords([u["text"] for u in map(json.loads, train_m.open())], 40)
    assert "subword_model" in load_checkpoint(tmp_path / "run" / "last.pt")
    # the checkpoint alone transcribes, with word timings from the pieces and their spaces
    wavs = sorted(str(p) for p in (tmp_path / "train" / "wav").glob("*.wav"))[:3]
    assert transcribe_main([*wavs, "--model", str(tmp_path / "run" / "best.pt"), "--format", "json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["audio"] for r in records] == wavs
    assert all(" ".join(w["word"] for w in r["words"]) == r["text"] for r in records)
    assert any(r["text"] for r in records)  # (the barely trained model writes letters and pieces)
    # asr-lm build --unit piece counts the checkpoint's own pieces
    arpa = tmp_path / "pieces.arpa"
    assert lm_main(["build", "--unit", "piece", "--model", str(tmp_path / "run" / "best.pt"), str(train_m),
                    str(arpa)]) == 0
    assert set(arpa_unigrams(arpa)) - {"<s>", "</s>", "<unk>"} <= {"|", *rec.vocab.tokens[1:]}
    assert not BeamSearchDecoder(rec.vocab, lm=arpa, num_threads=1).lexicon_mode
    # resuming on transcripts that give other units is refused
    other = write_tone_corpus(tmp_path / "other", 16, seed=3)
    other.write_text(other.read_text().replace('"ab', '"zz').replace(' ab', ' zz'))
    cfg = tiny_config(other, dev_m, tmp_path / "run", epochs=2, resume=True)
    cfg.data.subwords = 40
    with pytest.raises(UserError, match="other output units"):
        train(cfg)
