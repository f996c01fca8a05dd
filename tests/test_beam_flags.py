"""asr.beam_flags: the search flags asr-transcribe, asr-evaluate and asr-lm tune share."""

import argparse

import pytest

from asr.beam_flags import add_beam_arguments, check_beam_flags
from asr.utils import UserError


def test_lm_is_required_only_where_asked():
    loose, strict = argparse.ArgumentParser(), argparse.ArgumentParser()
    add_beam_arguments(loose.add_argument_group("decoding"))
    add_beam_arguments(strict.add_argument_group("decoding"), lm_required=True)
    assert loose.parse_args([]).lm is None
    assert strict.parse_args(["--lm", "w.arpa", "--beam-size", "4"]).beam_size == 4
    with pytest.raises(SystemExit):
        strict.parse_args([])


@pytest.mark.parametrize("settings, flag", [((0, 8, 0.99, 1), "--beam-size"), ((50, 8, 0.99, 0), "--nbest"),
                                            ((50, -1, 0.99, 1), "--beam-size-token"),
                                            ((50, 8, 0.3, 1), "--blank-skip 0.3")])
def test_settings_the_search_cannot_use_are_refused_naming_the_flag(settings, flag):
    check_beam_flags(50, 0, 1.0, 1)  # all tokens, every frame kept: fine
    with pytest.raises(UserError, match=flag):
        check_beam_flags(*settings)
