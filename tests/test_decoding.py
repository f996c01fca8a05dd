import argparse

import pytest
import torch

from asr.decoding import GreedyDecoder, Hypothesis, add_decoder_arguments, decoder_from_args
from asr.text import Vocabulary
from asr.utils import UserError

VOCAB = Vocabulary()
A, B, C, SPACE = (VOCAB.labels.index(c) for c in ("a", "b", "c", " "))


def _log_probs(paths: list[list[int]], frames: int | None = None, vocab: int = len(VOCAB)) -> torch.Tensor:
    """Log-probabilities whose best path is ``paths[i]`` (padded frames favour ``c``)."""
    frames = frames or max(map(len, paths))
    x = torch.full((len(paths), frames, vocab), -5.0)
    x[:, :, C] = -0.1  # padding frames: must be ignored through ``lengths``
    for b, path in enumerate(paths):
        for t, k in enumerate(path):
            x[b, t, C] = -5.0
            x[b, t, k] = -0.5 - 0.01 * t
    return x


def test_greedy_merges_repeats_drops_blanks_and_reports_emission_frames():
    path = [0, A, A, 0, A, B, B, SPACE, 0, C, C]
    (hyp,), = GreedyDecoder(VOCAB).decode(_log_probs([path]), torch.tensor([len(path)]))
    assert isinstance(hyp, Hypothesis)
    assert hyp.text == "aab c"
    assert hyp.tokens == [A, A, B, SPACE, C]
    assert hyp.timesteps == [1, 4, 5, 7, 9]  # the first frame of each emitted token
    assert hyp.score == pytest.approx(sum(-0.5 - 0.01 * t for t in range(len(path))))


def test_batched_decoding_respects_lengths():
    paths = [[A, 0, B], [B, B, B, B, 0, A, A], [0, 0]]
    lengths = torch.tensor([3, 7, 2])
    out = GreedyDecoder(VOCAB).decode(_log_probs(paths, frames=9), lengths)
    assert [nbest[0].text for nbest in out] == ["ab", "ba", ""]
    assert all(len(nbest) == 1 for nbest in out)
    assert out[2][0].tokens == [] and out[2][0].timesteps == []
    # each utterance decodes as it would alone
    for i, path in enumerate(paths):
        alone = GreedyDecoder(VOCAB).decode(_log_probs([path]), lengths[i:i + 1])[0][0]
        assert alone.text == out[i][0].text and alone.timesteps == out[i][0].timesteps
        assert alone.score == pytest.approx(out[i][0].score)


def test_zero_length_utterance_decodes_to_nothing():
    (hyp,), = GreedyDecoder(VOCAB).decode(_log_probs([[A, B]]), torch.tensor([0]))
    assert (hyp.text, hyp.tokens, hyp.timesteps, hyp.score) == ("", [], [], 0.0)


def test_greedy_accepts_half_precision_and_gradients():
    x = _log_probs([[A, B, B, C]]).bfloat16().requires_grad_()
    assert GreedyDecoder(VOCAB).decode(x, torch.tensor([4]))[0][0].text == "abc"


def _args(*argv):
    p = argparse.ArgumentParser()
    add_decoder_arguments(p)
    return p.parse_args(list(argv))


def test_decoder_from_args_defaults_to_greedy():
    args = _args()
    assert (args.decoder, args.beam_size, args.nbest) == ("greedy", 50, 1)
    assert isinstance(decoder_from_args(args, VOCAB), GreedyDecoder)


@pytest.mark.parametrize("argv, message", [(["--lm", "x.arpa"], "--lm needs --decoder beam"),
                                           (["--lexicon", "l.txt"], "--lexicon needs --decoder beam"),
                                           (["--decoder", "beam", "--beam-size", "0"], "at least 1"),
                                           (["--decoder", "beam", "--nbest", "0"], "at least 1"),
                                           (["--decoder", "beam", "--blank-skip", "0.3"], "from 0.5 to 1"),
                                           (["--decoder", "beam", "--blank-skip", "1.5"], "from 0.5 to 1"),
                                           (["--blank-penalty", "nan"], "--blank-penalty nan: expected a finite"),
                                           (["--decoder", "beam", "--blank-penalty", "inf"], "--blank-penalty inf")])
def test_inconsistent_decoder_flags_are_user_errors(argv, message):
    with pytest.raises(UserError, match=message):
        decoder_from_args(_args(*argv), VOCAB)


def test_greedy_text_has_single_spaces_between_words_and_keeps_the_tokens():
    # a space emitted twice (space, blank, space) and spaces at either end
    path = [SPACE, 0, A, SPACE, 0, SPACE, B, 0, SPACE]
    (hyp,), = GreedyDecoder(VOCAB).decode(_log_probs([path]), torch.tensor([len(path)]))
    assert hyp.text == "a b"
    assert hyp.tokens == [SPACE, A, SPACE, SPACE, B, SPACE] and len(hyp.timesteps) == 6


def _hesitant(margins: list[float]) -> torch.Tensor:
    """(1, frames, vocab) log-probs: blank best by ``margins[t]`` nats over ``a`` on frame t,
    the other tokens far below."""
    x = torch.full((1, len(margins), len(VOCAB)), -20.0)
    for t, m in enumerate(margins):
        x[0, t, 0] = -0.1
        x[0, t, A] = -0.1 - m
    return x


def test_blank_penalty_lets_a_letter_win_where_blank_leads_by_less():
    x, n = _hesitant([0.5, 3.0, 0.5, 3.0, 2.0]), torch.tensor([5])
    texts = {p: GreedyDecoder(VOCAB, blank_penalty=p).decode(x, n)[0][0].text for p in (0.0, 1.0, 2.5, -1.0)}
    assert texts == {0.0: "", 1.0: "aa", 2.5: "aaa", -1.0: ""}
    hyp = GreedyDecoder(VOCAB, blank_penalty=1.0).decode(x, n)[0][0]
    assert hyp.timesteps == [0, 2]
    assert hyp.score == pytest.approx(2 * -0.6 + 3 * -1.1)  # the penalised blank frames count as scored
    assert x[0, 0, 0] == pytest.approx(-0.1)  # the caller's tensor is untouched
    args = _args("--blank-penalty", "1")
    assert args.blank_penalty == 1.0 and decoder_from_args(args, VOCAB).decode(x, n)[0][0].text == "aa"
    assert _args().blank_penalty == 0.0
