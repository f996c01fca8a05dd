"""Modified Kneser-Ney estimation, ARPA round trip (our reader, flashlight's KenLM and the
``kenlm`` module when installed), ``asr-lm build`` and ``asr-lm tune``."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from asr.checkpoint import save_checkpoint
from asr.arpa import MAX_ORDER, UNK, LMError, arpa_logprob, arpa_unigrams, read_arpa
from asr.lm import (build_arpa, estimate, main, mix_models, read_sentences, search_pairs, tune, unigram_model,
                    write_arpa)
from asr.text import Vocabulary
from asr.utils import run_cli

SENTENCES = ["stop now", "go left", "stop the music", "start now", "go home now", "stop", "play music now",
             "go left now", "turn the music off", "music"]


def _vocab(model) -> list[str]:
    return [g[0] for g in model[0] if g[0] != "<s>"]


@pytest.mark.parametrize("order,unit", [(1, "word"), (2, "word"), (3, "word"), (4, "char")])
def test_probabilities_sum_to_one_in_every_context(tmp_path, order, unit):
    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    build_arpa(tmp_path / "t.txt", tmp_path / "m.arpa", order=order, unit=unit)
    model = read_arpa(tmp_path / "m.arpa")
    assert len(model) == order
    words = _vocab(model)
    contexts = [()] + [g for k in range(order - 1) for g in model[k] if g[-1] != "</s>"]
    # contexts the model has never seen back off to shorter ones and must sum to one too
    contexts += [("music", "music", "music")[:order - 1], ("<s>", "play")[:order - 1]]
    for ctx in contexts:
        total = sum(10 ** arpa_logprob(model, ctx, w) for w in words)
        assert total == pytest.approx(1.0, abs=2e-6), ctx


def test_unigram_values_by_hand():
    # counts a:2 b:1 </s>:2 -> count-of-counts too thin, fallback discounts 0.5/1/1.5;
    # gamma = (1 + 0.5 + 1) / 5 spread over |V| = 4 (a, b, </s>, <unk>)
    model = estimate([["a", "b"], ["a"]], order=1)[0]
    p = {g[0]: v[0] for g, v in model.items()}
    assert p["a"] == pytest.approx(1 / 5 + 0.5 / 4)
    assert p["b"] == pytest.approx(0.5 / 5 + 0.5 / 4)
    assert p["</s>"] == pytest.approx(1 / 5 + 0.5 / 4)
    assert p[UNK] == pytest.approx(0.5 / 4)
    assert p["<s>"] == 0


def test_lower_orders_use_continuation_counts():
    # "y" is frequent but only ever follows "x"; "w" is rare, also after one word:
    # Kneser-Ney gives them the same unigram probability, raw counts would not.
    model = estimate([["x", "y"]] * 5 + [["z", "w"]], order=2)
    assert model[0][("y",)][0] == pytest.approx(model[0][("w",)][0])
    assert model[0][("x",)][0] == pytest.approx(model[0][("z",)][0])  # both only after <s>


def test_arpa_loads_in_kenlm_with_same_scores(tmp_path):
    kenlm = pytest.importorskip("kenlm")
    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    build_arpa(tmp_path / "t.txt", tmp_path / "m.arpa", order=3)
    model, km = read_arpa(tmp_path / "m.arpa"), kenlm.Model(str(tmp_path / "m.arpa"))
    for sentence in ("stop the music now", "go left", "play home music", "zebra now"):
        words = sentence.split() + ["</s>"]
        ours = sum(arpa_logprob(model, ["<s>", *words[:i]], w) for i, w in enumerate(words))
        assert km.score(sentence, bos=True, eos=True) == pytest.approx(ours, abs=1e-4)


def test_read_sentences_from_manifest_and_text(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("\n".join(json.dumps({"audio_filepath": "x.wav", "duration": 1.0, "text": t})
                                  for t in ("Stop, NOW!", "it's blue", "  ")) + "\n")
    assert read_sentences(manifest) == [["stop", "now"], ["it's", "blue"]]
    assert read_sentences(manifest, unit="char")[0] == list("stop|now")
    (tmp_path / "t.txt").write_text("Go left.\n\nplay\n")
    assert read_sentences(tmp_path / "t.txt") == [["go", "left"], ["play"]]
    assert read_sentences(tmp_path / "t.txt", Vocabulary(" abcdefghijklmnopqrstuvwxyz"))[0] == ["go", "left"]


def test_build_cli_writes_arpa_the_decoder_loads(tmp_path, capsys):
    from asr.beam import BeamSearchDecoder

    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    assert main(["build", "--order", "2", str(tmp_path / "t.txt"), str(tmp_path / "lm.arpa")]) == 0
    assert "2-gram word model" in capsys.readouterr().out
    assert set(arpa_unigrams(tmp_path / "lm.arpa")) >= {"stop", "music", "</s>", "<unk>"}
    dec = BeamSearchDecoder(Vocabulary(), lm=tmp_path / "lm.arpa", num_threads=1)
    assert dec.lexicon_mode
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_build_cli_errors_are_one_line(tmp_path, capsys):
    assert run_cli(main, ["build", str(tmp_path / "missing.txt"), str(tmp_path / "o.arpa")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "missing.txt" in err and "\n" not in err
    (tmp_path / "empty.txt").write_text("\n...\n")
    assert run_cli(main, ["build", str(tmp_path / "empty.txt"), str(tmp_path / "o.arpa")]) == 2
    assert "no text left" in capsys.readouterr().err
    assert run_cli(main, ["build", "--order", "0", str(tmp_path / "empty.txt"), str(tmp_path / "o.arpa")]) == 2
    capsys.readouterr()
    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    assert run_cli(main, ["build", "--unit", "piece", str(tmp_path / "t.txt"), str(tmp_path / "o.arpa")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --unit piece needs --model") and "\n" not in err
    assert not (tmp_path / "o.arpa").exists()


def test_build_refuses_an_order_the_decoder_cannot_load(tmp_path, capsys):
    """KenLM as compiled into the decoder loads at most MAX_ORDER-grams: a longer model
    would be built, then fail when decoding starts. Both sides of the limit are checked
    against the real loader, so a decoder that loads more shows up here."""
    from asr.beam import BeamSearchDecoder

    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    out = str(tmp_path / "c.arpa")
    assert run_cli(main, ["build", "--unit", "char", "--order", str(MAX_ORDER + 1), str(tmp_path / "t.txt"), out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: --order {MAX_ORDER + 1}") and f"from 1 to {MAX_ORDER}" in err and "\n" not in err
    assert not (tmp_path / "c.arpa").exists()
    assert run_cli(main, ["build", "--unit", "char", "--order", str(MAX_ORDER), str(tmp_path / "t.txt"), out]) == 0
    BeamSearchDecoder(Vocabulary(), lm=out, num_threads=1)  # the longest allowed order loads
    build_arpa(tmp_path / "t.txt", tmp_path / "c7.arpa", order=MAX_ORDER + 1, unit="char")
    with pytest.raises(LMError, match="KenLM cannot load it"):
        BeamSearchDecoder(Vocabulary(), lm=tmp_path / "c7.arpa", num_threads=1)


def test_tune_picks_the_pair_that_fixes_the_misspelling(tmp_path):
    from asr.beam import BeamSearchDecoder
    from test_beam import spell

    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    build_arpa(tmp_path / "t.txt", tmp_path / "c.arpa", order=5, unit="char")
    log_probs = [spell("stup now", {2: ("o", 1.0)}), spell("go left")]
    dec = BeamSearchDecoder(Vocabulary(), lm=tmp_path / "c.arpa", num_threads=1)
    rows = tune(log_probs, ["stop now", "go left"], dec, [(0.0, 0.0), (1.0, 0.0)])
    assert [r["rates"].wer for r in rows] == [0.25, 0.0]


def test_tune_cli_prints_table_and_best_pair(tmp_path, corpus, capsys):
    from conftest import tiny_recognizer

    save_checkpoint(tmp_path / "m.pt", tiny_recognizer().describe())
    build_arpa(corpus.manifest, tmp_path / "w.arpa", order=2)
    argv = ["tune", "--model", str(tmp_path / "m.pt"), "--manifest", str(corpus.manifest), "--lm",
            str(tmp_path / "w.arpa"), "--lm-weights", "0,1", "--word-scores", "-1,2", "--beam-size", "4",
            "--threads", "1", "--device", "cpu", "--beam-size-token", "0"]
    assert run_cli(main, [*argv[:-1], "-1"]) == 2
    assert capsys.readouterr().err.strip() == "error: --beam-size-token must be 0 (all tokens) or more"
    assert main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    table = [line.split() for line in lines[2:-1]]
    assert [(float(r[0]), float(r[1])) for r in table] == [(0, -1), (0, 2), (1, -1), (1, 2)]
    wers = [float(r[2]) for r in table]
    assert lines[1].split()[0] == "greedy"
    best = lines[-1].split()
    assert best[0] == "best:" and (float(best[2]), float(best[4])) in {(0, -1), (0, 2), (1, -1), (1, 2)}
    assert float(best[6].strip("(WER%,")) == min(wers)
    # with a blank penalty the best line carries it, to be copied into asr-evaluate as it is
    assert main([*argv, "--blank-penalty", "0.5"]) == 0
    best = capsys.readouterr().out.strip().splitlines()[-1].split()
    assert best[0] == "best:" and best[5:7] == ["--blank-penalty", "0.5"]


def test_write_arpa_is_readable(tmp_path):
    model = estimate([s.split() for s in SENTENCES], order=2)
    write_arpa(model, tmp_path / "m.arpa")
    back = read_arpa(tmp_path / "m.arpa")
    assert len(back[1]) == len(model[1])
    p, bow = back[0][("stop",)]
    assert p == pytest.approx(math.log10(model[0][("stop",)][0]), abs=1e-6)
    assert bow == pytest.approx(math.log10(model[0][("stop",)][1]), abs=1e-6)


def test_search_pairs_grid_and_random():
    assert search_pairs([0, 1], [-1, 2]) == [(0, -1), (0, 2), (1, -1), (1, 2)]
    pairs = search_pairs([0.5, 2], [-1, 0, 3], n_random=20, seed=1)
    assert len(pairs) == 20 and len(set(pairs)) == 20
    assert all(0.5 <= a <= 2 and -1 <= b <= 3 for a, b in pairs)
    assert pairs == search_pairs([0.5, 2], [-1, 0, 3], n_random=20, seed=1)


def test_arpa_scores_in_flashlight_kenlm_match(tmp_path):
    from flashlight.lib.text.decoder.kenlm import KenLM
    from flashlight.lib.text.dictionary import Dictionary

    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    build_arpa(tmp_path / "t.txt", tmp_path / "m.arpa", order=3)
    model = read_arpa(tmp_path / "m.arpa")
    words = ["stop", "the", "music", "now", "zebra", UNK]
    d = Dictionary(words)
    lm = KenLM(str(tmp_path / "m.arpa"), d)
    state, context = lm.start(False), ["<s>"]
    for w in ["stop", "the", "music", "now", "zebra", "now"]:
        state, score = lm.score(state, d.get_index(w))
        assert score == pytest.approx(arpa_logprob(model, context, w), abs=1e-5), w
        context.append(w)
    assert lm.finish(state)[1] == pytest.approx(arpa_logprob(model, context, "</s>"), abs=1e-5)


# ----------------------------------------------------------------------------- mixing

OTHER = ["play the radio", "turn it up", "go to sleep now", "the radio is on"]


def _two_models(tmp_path, order_a=3, order_b=2):
    (tmp_path / "a.txt").write_text("\n".join(SENTENCES))
    (tmp_path / "b.txt").write_text("\n".join(OTHER))
    build_arpa(tmp_path / "a.txt", tmp_path / "a.arpa", order=order_a)
    build_arpa(tmp_path / "b.txt", tmp_path / "b.arpa", order=order_b)
    return read_arpa(tmp_path / "a.arpa"), read_arpa(tmp_path / "b.arpa")


def _p(model, context, word):
    """P(word | context), 0 for a word outside the model's vocabulary (as mixing treats it)."""
    return 10 ** arpa_logprob(model, context, word) if (word,) in model[0] else 0.0


def test_mix_is_the_weighted_sum_on_every_explicit_ngram_and_normalised(tmp_path):
    a, b = _two_models(tmp_path)
    mixed = mix_models([a, b], [0.7, 0.3])
    write_arpa(mixed, tmp_path / "m.arpa")
    m = read_arpa(tmp_path / "m.arpa")
    assert len(m) == 3
    assert {"radio", "sleep", "music", "stop"} <= set(_vocab(m))  # the union of the vocabularies
    for k in range(3):
        for g in set(a[k]) | set(b[k] if k < len(b) else {}):
            if g == ("<s>",):
                continue
            expected = 0.7 * _p(a, g[:-1], g[-1]) + 0.3 * _p(b, g[:-1], g[-1])
            assert 10 ** arpa_logprob(m, g[:-1], g[-1]) == pytest.approx(expected, rel=1e-5), g
    words = _vocab(m)
    for ctx in [(), ("the",), ("play", "the"), ("radio", "music"), ("unseen", "words")]:
        assert sum(10 ** arpa_logprob(m, ctx, w) for w in words) == pytest.approx(1.0, abs=1e-5), ctx


def test_mix_with_all_weight_on_one_model_gives_that_model(tmp_path):
    a, b = _two_models(tmp_path)
    m = mix_models([a, b], [1.0, 0.0])
    write_arpa(m, tmp_path / "m.arpa")
    m = read_arpa(tmp_path / "m.arpa")
    for ctx, w in [(("<s>",), "stop"), (("stop", "the"), "music"), (("go",), "now"), ((), "home")]:
        assert arpa_logprob(m, ctx, w) == pytest.approx(arpa_logprob(a, ctx, w), abs=1e-5)
    assert arpa_logprob(m, (), "radio") < -90  # only the weightless model knows it


def test_mix_rejects_weights_that_do_not_fit(tmp_path):
    a, b = _two_models(tmp_path)
    with pytest.raises(ValueError, match="one weight per model"):
        mix_models([a, b], [1.0])
    with pytest.raises(ValueError, match="sum to 1"):
        mix_models([a, b], [0.7, 0.7])


def test_unigram_model_of_a_word_list(tmp_path):
    (model,), skipped = unigram_model({"The": 6.0, "the": 2.0, "radio": 2.0, "rock-n-roll": 1.0, "zero": 0},
                                      Vocabulary(), eos_prob=0.2, covered=0.9)
    p = {g[0]: v[0] for g, v in model.items()}
    assert p["the"] == pytest.approx(0.8 * 0.9 * 8 / 10)  # case folded, counts merged
    assert p["radio"] == pytest.approx(0.8 * 0.9 * 2 / 10)
    assert p["</s>"] == 0.2 and p[UNK] == pytest.approx(0.8 * 0.1) and p["<s>"] == 0
    assert sum(p.values()) == pytest.approx(1.0)
    assert skipped == {"not one word after normalisation": 1, "zero or negative count": 1}


def test_words_and_mix_cli_write_a_model_the_decoder_loads(tmp_path, capsys):
    from asr.beam import BeamSearchDecoder

    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    (tmp_path / "words.txt").write_text("the 50\nradio 3\nmusic\n\nThe 2\n")
    assert main(["build", str(tmp_path / "t.txt"), str(tmp_path / "lm.arpa")]) == 0
    assert main(["words", str(tmp_path / "w.arpa"), "--word-counts", str(tmp_path / "words.txt")]) == 0
    out = capsys.readouterr().out
    assert "unigram model of 3 words" in out
    assert main(["mix", str(tmp_path / "lm.arpa"), str(tmp_path / "w.arpa"), str(tmp_path / "mix.arpa"),
                 "--weights", "0.9,0.1"]) == 0
    assert "mix of 2 models (weights 0.9, 0.1)" in capsys.readouterr().out
    assert "radio" in arpa_unigrams(tmp_path / "mix.arpa")
    dec = BeamSearchDecoder(Vocabulary(), lm=tmp_path / "mix.arpa", num_threads=1)
    assert dec.lexicon_mode
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_mix_and_words_cli_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "t.txt").write_text("\n".join(SENTENCES))
    build_arpa(tmp_path / "t.txt", tmp_path / "lm.arpa")
    (tmp_path / "bad.txt").write_text("the 5\nhello world 2\n")
    cases = [(["mix", str(tmp_path / "lm.arpa"), str(tmp_path / "lm.arpa"), str(tmp_path / "o.arpa"),
               "--weights", "0.5,0.6"], "sum to 1"),
             (["mix", str(tmp_path / "lm.arpa"), str(tmp_path / "missing.arpa"), str(tmp_path / "o.arpa")],
              "missing.arpa"),
             (["mix", str(tmp_path / "lm.arpa"), str(tmp_path / "o.arpa")], "two or more"),
             (["mix", str(tmp_path / "lm.arpa"), str(tmp_path / "lm.arpa"), str(tmp_path / "o.arpa"),
               "--weights", "1"], "one weight per model"),
             (["words", str(tmp_path / "o.arpa"), "--word-counts", str(tmp_path / "nothing.txt")], "nothing.txt"),
             (["words", str(tmp_path / "o.arpa"), "--word-counts", str(tmp_path / "bad.txt")], "bad.txt:2"),
             (["words", str(tmp_path / "o.arpa"), "--word-counts", str(tmp_path / "t.txt"), "--eos-prob", "1"],
              "--eos-prob")]
    for argv, named in cases:
        assert run_cli(main, argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and named in err and "\n" not in err, err
    assert not (tmp_path / "o.arpa").exists()


def test_words_cli_reads_the_wordfreq_package(tmp_path, monkeypatch, capsys):
    import sys
    import types

    fake = types.ModuleType("wordfreq")
    table = {"the": 0.05, "music": 0.001, "u.s.": 0.0005}
    fake.top_n_list = lambda lang, n, wordlist="best": list(table)[:n]
    fake.word_frequency = lambda word, lang, wordlist="best": table[word]
    monkeypatch.setitem(sys.modules, "wordfreq", fake)
    assert main(["words", str(tmp_path / "w.arpa"), "--top", "3"]) == 0
    out = capsys.readouterr().out
    assert "unigram model of 2 words" in out and "skipped 1 words" in out
    p = {g[0]: 10 ** v[0] for g, v in read_arpa(tmp_path / "w.arpa")[0].items()}
    covered = 0.0515  # the listed words' share of running text becomes their share of the model
    assert p["the"] == pytest.approx(0.9 * covered * 0.05 / 0.051, rel=1e-5)
    assert p[UNK] == pytest.approx(0.9 * (1 - covered), rel=1e-5)
    monkeypatch.setitem(sys.modules, "wordfreq", None)  # not installed
    assert run_cli(main, ["words", str(tmp_path / "x.arpa")]) == 2
    assert "pip install" in capsys.readouterr().err


def test_tune_beam_flags_match_asr_evaluate():
    # same search as asr-evaluate's, or the pair tune picks would not be the pair evaluate decodes
    # with; and asr-lm, whose build starts without torch, still imports no torch to declare them
    from asr.evaluation import build_parser as evaluate_parser
    from asr.lm import build_parser as lm_parser

    tune = lm_parser().parse_args(["tune", "--model", "m.pt", "--manifest", "d.jsonl", "--lm", "l.arpa"])
    evaluate = evaluate_parser().parse_args(["--model", "m.pt", "--manifest", "d.jsonl"])
    for flag in ("beam_size", "beam_threshold", "blank_skip", "beam_size_token", "lexicon"):
        assert getattr(tune, flag) == getattr(evaluate, flag), flag
    code = "import sys, asr.lm; asr.lm.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
