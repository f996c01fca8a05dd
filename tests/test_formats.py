"""asr.formats: txt, json, srt, vtt and tsv writers."""

import json

import pytest

from asr.align import Word
from asr.decoding import Hypothesis
from asr.formats import Transcript, cues, render, to_json


def _transcript():
    words = [Word("hello", 0.5, 0.9, 0.91), Word("world", 1.0, 1.4, 0.5),
             Word("again", 3661.2, 3661.75, 0.25)]
    return Transcript("dir/a.wav", "hello world again", 3662.0,
                      [Hypothesis("hello world again", score=-1.5), Hypothesis("hello word again", score=-2.25)], words)


def test_txt_and_json_lines():
    t = _transcript()
    assert render(t, "txt") == "hello world again\n"
    assert render(t, "txt", several=True) == "dir/a.wav\thello world again\n"
    line = render(t, "json")
    assert line.endswith("\n") and line.count("\n") == 1
    rec = json.loads(line)
    assert rec["audio"] == "dir/a.wav" and rec["text"] == "hello world again" and rec["duration"] == 3662.0
    assert rec["words"][1] == {"word": "world", "start": 1.0, "end": 1.4, "confidence": 0.5}
    assert rec["nbest"] == [{"text": "hello world again", "score": -1.5}, {"text": "hello word again", "score": -2.25}]
    t.nbest = t.nbest[:1]
    assert "nbest" not in to_json(t)


def test_srt_and_vtt_cues():
    t = _transcript()
    assert render(t, "srt") == ("1\n00:00:00,500 --> 00:00:01,400\nhello world\n\n"
                                "2\n01:01:01,200 --> 01:01:01,750\nagain\n")
    assert render(t, "vtt") == ("WEBVTT\n\n00:00:00.500 --> 00:00:01.400\nhello world\n\n"
                                "01:01:01.200 --> 01:01:01.750\nagain\n")
    t.words = []
    assert render(t, "srt") == "" and render(t, "vtt") == "WEBVTT\n\n"


def test_tsv_rows():
    t = _transcript()
    lines = render(t, "tsv").splitlines()
    assert lines[0] == "start\tend\tconfidence\tword"
    assert lines[1] == "0.500\t0.900\t0.9100\thello" and len(lines) == 4
    several = render(t, "tsv", several=True, header=False).splitlines()
    assert several[2] == "dir/a.wav\t3661.200\t3661.750\t0.2500\tagain" and len(several) == 3


def test_cues_split_on_length_and_pauses():
    words = [Word(f"w{i:02d}", i * 0.3, i * 0.3 + 0.25, 1.0) for i in range(30)]
    groups = cues(words, max_chars=42, max_seconds=6.0)
    assert [w for g in groups for w in g] == words
    assert all(sum(len(w.word) + 1 for w in g) - 1 <= 42 for g in groups)
    assert len(cues([Word("a", 0, 0.2, 1), Word("b", 2.0, 2.2, 1)])) == 2  # pause > 1 s


def test_ctm_is_one_word_a_line_with_start_duration_and_confidence():
    from asr.formats import to_ctm

    t = _transcript()
    t.audio = "dir/my talk.wav"
    lines = render(t, "ctm").splitlines()
    assert len(lines) == len(t.words)
    rec, channel, start, duration, word, confidence = lines[0].split(" ")
    w = t.words[0]
    assert (rec, channel, word) == ("my_talk", "1", w.word)
    assert float(start) == pytest.approx(w.start, abs=1e-3) and float(duration) == pytest.approx(w.end - w.start, abs=1e-3)
    assert float(confidence) == pytest.approx(w.confidence, abs=1e-4)
    t.words = []
    assert to_ctm(t) == ""
