"""Beam search on synthetic log-probabilities: LM corrections, lexicon restriction, N-best,
timesteps, parallel decoding, and one-line errors for bad LM and lexicon files."""

from __future__ import annotations

import math

import pytest
import torch

from asr.beam import BeamSearchDecoder, LexiconError, read_lexicon, skip_blank_runs
from asr.decoding import GreedyDecoder
from asr.lm import build_arpa
from asr.text import Vocabulary
from asr.utils import UserError

VOCAB = Vocabulary()
SENTENCES = ["stop now", "go left", "stop the music", "start now", "go home now", "stop", "play music now"]


def spell(text: str, confusions: dict[int, tuple[str, float]] | None = None, frames: int = 2) -> torch.Tensor:
    """Log-probs ``(steps, vocab)`` whose argmax path spells ``text``: each character for
    ``frames`` steps, then a blank. ``confusions[i] = (char, margin)`` puts a rival ``char``
    ``margin`` below character ``i``."""
    rows = []
    for i, ch in enumerate(text):
        for _ in range(frames):
            row = torch.full((len(VOCAB),), -12.0)
            row[VOCAB.encode(ch) if ch != " " else [VOCAB.id(" ")]] = 0.0
            if confusions and i in confusions:
                rival, margin = confusions[i]
                row[VOCAB.id(rival)] = -margin
            row[VOCAB.blank] = -3.0
            rows.append(row)
        blank = torch.full((len(VOCAB),), -12.0)
        blank[VOCAB.blank] = 0.0
        rows.append(blank)
    return torch.log_softmax(torch.stack(rows), -1)


def batch(*seqs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(s) for s in seqs])
    return torch.nn.utils.rnn.pad_sequence(list(seqs), batch_first=True), lengths


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    (root / "text.txt").write_text("\n".join(SENTENCES) + "\n")
    build_arpa(root / "text.txt", root / "words.arpa", order=3, unit="word")
    build_arpa(root / "text.txt", root / "chars.arpa", order=5, unit="char")
    return root


# "stup now": the 'u' beats the 'o' by 1 nat, so greedy misspells "stop".
MISSPELT = spell("stup now", {2: ("o", 1.0)})


def test_greedy_misspells_and_word_lm_fixes_it(lms):
    lp, n = batch(MISSPELT)
    assert GreedyDecoder(VOCAB).decode(lp, n)[0][0].text == "stup now"
    dec = BeamSearchDecoder(VOCAB, lm=lms / "words.arpa", lm_weight=1.0, num_threads=1)
    assert dec.lexicon_mode  # a word LM without --lexicon spells its own 1-grams
    assert dec.decode(lp, n)[0][0].text == "stop now"


def test_char_lm_fixes_it_lexicon_free(lms):
    lp, n = batch(MISSPELT)
    dec = BeamSearchDecoder(VOCAB, lm=lms / "chars.arpa", lm_weight=1.0, num_threads=1)
    assert not dec.lexicon_mode
    assert dec.decode(lp, n)[0][0].text == "stop now"
    # with no LM weight the acoustics win
    assert dec.reweighted(0.0, 0.0).decode(lp, n)[0][0].text == "stup now"


def test_without_lm_matches_greedy_tokens_and_timesteps():
    seqs = [spell("go left"), spell("music", frames=3), spell("a")]
    lp, n = batch(*seqs)
    beam = BeamSearchDecoder(VOCAB, beam_size=8, num_threads=1).decode(lp, n)
    greedy = GreedyDecoder(VOCAB).decode(lp, n)
    for b, g in zip(beam, greedy):
        assert (b[0].text, b[0].tokens, b[0].timesteps) == (g[0].text, g[0].tokens, g[0].timesteps)
        assert b[0].score == pytest.approx(g[0].score, abs=1e-3)


def _blank(p_blank: float) -> torch.Tensor:
    """One frame: blank with probability ``p_blank``, the rest spread over the letters."""
    row = torch.full((len(VOCAB),), math.log((1 - p_blank) / (len(VOCAB) - 1)))
    row[VOCAB.blank] = math.log(p_blank)
    return row


def test_blank_runs_are_cut_to_their_first_frame():
    # "l", 4 sure blanks, "l", a 0.98 blank then a sure one, "o", 3 sure blanks
    l_, o_ = spell("l")[0], spell("o")[0]
    sure, unsure = _blank(0.999), _blank(0.98)
    a = torch.stack([l_, sure, sure, sure, sure, l_, unsure, sure, o_, sure, sure, sure]).numpy()
    kept, index, dropped = skip_blank_runs(a, 0.99)
    assert index.tolist() == [0, 1, 5, 6, 7, 8, 9]  # the 0.98 frame is not a sure blank
    assert kept.flags.c_contiguous and (kept == a[index]).all()
    assert dropped == pytest.approx(5 * math.log(0.999), rel=1e-5)
    assert skip_blank_runs(a, 1.0)[1].tolist() == list(range(12))
    assert skip_blank_runs(a, 0.95)[1].tolist() == [0, 1, 5, 6, 8, 9]


def test_blank_skip_keeps_text_timesteps_and_score():
    sure = _blank(0.9995)[None].expand(6, -1)
    seqs = [torch.cat([sure, spell("all "), sure, spell("too good"), sure]), spell("go left"), torch.cat([sure, sure])]
    lp, n = batch(*seqs)
    greedy = GreedyDecoder(VOCAB).decode(lp, n)
    for skip in (0.99, 1.0):
        beam = BeamSearchDecoder(VOCAB, beam_size=8, num_threads=1, blank_skip=skip).decode(lp, n)
        for b, g in zip(beam, greedy):
            assert (b[0].text, b[0].tokens, b[0].timesteps) == (g[0].text, g[0].tokens, g[0].timesteps)
            assert b[0].score == pytest.approx(g[0].score, abs=1e-3)
    assert [h[0].text for h in greedy] == ["all too good", "go left", ""]
    with pytest.raises(UserError, match="--blank-skip 0.2"):
        BeamSearchDecoder(VOCAB, blank_skip=0.2)


def test_blank_penalty_decodes_as_greedy_with_the_same_penalty():
    # "go" with its "o" under blank by 0.4 nats on two frames, between near-certain blanks
    lp = spell("go", {})
    lp[3:5, VOCAB.blank], lp[3:5, VOCAB.id("o")] = -0.2, -0.6
    lp, n = batch(lp)
    for penalty in (0.0, 1.0):
        beam = BeamSearchDecoder(VOCAB, beam_size=8, num_threads=1, blank_penalty=penalty).decode(lp, n)
        greedy = GreedyDecoder(VOCAB, blank_penalty=penalty).decode(lp, n)
        assert beam[0][0].text == greedy[0][0].text == ("go" if penalty else "g")
        assert beam[0][0].score == pytest.approx(greedy[0][0].score, abs=1e-3)
    with pytest.raises(UserError, match="--blank-penalty nan"):
        BeamSearchDecoder(VOCAB, blank_penalty=float("nan"))


def test_lexicon_restricts_output_to_its_words(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("stop s t o p |\nnow n o w |\ngo go\nleft\n")
    lp, n = batch(MISSPELT, spell("go lft", {}))
    dec = BeamSearchDecoder(VOCAB, lexicon=lexicon, num_threads=1)
    texts = [h[0].text for h in dec.decode(lp, n)]
    assert texts == ["stop now", "go left"]
    words = {"stop", "now", "go", "left"}
    for nbest in BeamSearchDecoder(VOCAB, lexicon=lexicon, nbest=4, num_threads=1).decode(lp, n):
        assert all(set(h.text.split()) <= words for h in nbest)


def test_nbest_distinct_and_ordered(lms):
    lp, n = batch(MISSPELT)
    one = BeamSearchDecoder(VOCAB, lm=lms / "chars.arpa", lm_weight=1.0, num_threads=1).decode(lp, n)[0]
    three = BeamSearchDecoder(VOCAB, lm=lms / "chars.arpa", lm_weight=1.0, nbest=3, num_threads=1).decode(lp, n)[0]
    assert len(one) == 1 and len(three) == 3
    assert three[0].text == one[0].text
    assert len({h.text for h in three}) == 3
    assert all(a.score >= b.score for a, b in zip(three, three[1:]))
    assert all(math.isfinite(h.score) for h in three)


def test_worker_processes_give_the_same_result(lms):
    seqs = [MISSPELT, spell("go hume now", {4: ("o", 1.0)}), spell("play music"), spell("start"),
            spell("stop the music")]
    lp, n = batch(*seqs)
    serial = BeamSearchDecoder(VOCAB, lm=lms / "words.arpa", lm_weight=1.0, word_score=0.5, num_threads=1)
    parallel = BeamSearchDecoder(VOCAB, lm=lms / "words.arpa", lm_weight=1.0, word_score=0.5, num_threads=2)
    try:
        par, ser = parallel.decode(lp, n), serial.decode(lp, n)
    finally:
        parallel.close()
    # flashlight may keep either of two equally scored alignments of a merged prefix, so
    # compare transcripts, tokens and scores; timesteps must be a valid increasing path
    assert [(h.text, h.tokens, h.score) for h, in par] == [(h.text, h.tokens, h.score) for h, in ser]
    assert [h.text for h, in par] == ["stop now", "go home now", "play music", "start", "stop the music"]
    for (h,), length in zip(par, n.tolist()):
        assert len(h.timesteps) == len(h.tokens)
        assert all(0 <= a < b < length for a, b in zip(h.timesteps, h.timesteps[1:]))


def test_empty_and_padded_inputs():
    lp, n = batch(spell("go"), torch.zeros(0, len(VOCAB)))
    out = BeamSearchDecoder(VOCAB, num_threads=1).decode(lp, n)
    assert [h[0].text for h in out] == ["go", ""]


def test_bad_files_are_user_errors(tmp_path, lms):
    with pytest.raises(UserError, match="not found"):
        BeamSearchDecoder(VOCAB, lm=tmp_path / "missing.arpa")
    (tmp_path / "junk.arpa").write_text("hello world\n")
    with pytest.raises(UserError, match="neither an ARPA"):
        BeamSearchDecoder(VOCAB, lm=tmp_path / "junk.arpa")
    (tmp_path / "bad.lex").write_text("ok o k\nr2d2 r 2 d 2\n")
    with pytest.raises(LexiconError, match=r"bad.lex:2: .*'2'"):
        read_lexicon(tmp_path / "bad.lex", VOCAB)
    (tmp_path / "good.lex").write_text("stop\n")
    with pytest.raises(UserError, match="token LM"):
        BeamSearchDecoder(VOCAB, lm=lms / "chars.arpa", lexicon=tmp_path / "good.lex")
    with pytest.raises(UserError, match="space"):
        BeamSearchDecoder(Vocabulary("abc"))


def test_upper_case_word_lm_as_librispeech_publishes(tmp_path):
    from asr.lm import estimate, write_arpa

    write_arpa(estimate([s.upper().split() for s in SENTENCES], order=3), tmp_path / "upper.arpa")
    lp, n = batch(MISSPELT)
    dec = BeamSearchDecoder(VOCAB, lm=tmp_path / "upper.arpa", lm_weight=1.0, num_threads=1)
    assert dec.decode(lp, n)[0][0].text == "stop now"
    (tmp_path / "upper.lex").write_text("STOP S T O P |\nNOW N O W |\n")
    dec = BeamSearchDecoder(VOCAB, lm=tmp_path / "upper.arpa", lexicon=tmp_path / "upper.lex", num_threads=1)
    assert dec.decode(lp, n)[0][0].text == "stop now"


def test_binary_lm_kind_is_found_by_scoring(lms, monkeypatch, tmp_path):
    # KenLM loads ARPA and binary files alike; pretend these are binaries (no word list to read)
    import asr.beam

    monkeypatch.setattr(asr.beam, "is_binary_lm", lambda path: True)
    assert not BeamSearchDecoder(VOCAB, lm=lms / "chars.arpa", num_threads=1).lexicon_mode
    with pytest.raises(UserError, match="binary word LM.*--lexicon"):
        BeamSearchDecoder(VOCAB, lm=lms / "words.arpa", num_threads=1)
    (tmp_path / "l.txt").write_text("stop\nnow\n")
    dec = BeamSearchDecoder(VOCAB, lm=lms / "words.arpa", lexicon=tmp_path / "l.txt", lm_weight=1.0, num_threads=1)
    assert dec.decode(*batch(MISSPELT))[0][0].text == "stop now"
