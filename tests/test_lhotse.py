"""lhotse manifests (CutSet, or RecordingSet + SupervisionSet; gzipped or not) to ours."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
import soundfile as sf

from asr.data import AudioDataset, read_manifest
from asr.lhotse import LhotseError, read_cuts
from asr.prepare import main
from asr.text import Vocabulary
from asr.utils import run_cli

RATE = 16000


def _recording(path, rid="rec1", seconds=3.0):
    t = np.arange(int(seconds * RATE)) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), RATE)
    return {"id": rid, "sources": [{"type": "file", "channels": [0], "source": str(path)}], "sampling_rate": RATE,
            "num_samples": int(seconds * RATE), "duration": seconds, "channel_ids": [0]}


def _write(path, objects):
    text = "".join(json.dumps(o) + "\n" for o in objects)
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


def test_cuts_become_utterances_with_offsets_where_they_cover_part_of_a_recording(tmp_path):
    rec = _recording(tmp_path / "a.wav")
    whole = {"id": "c1", "start": 0.0, "duration": 3.0, "channel": 0, "type": "MonoCut", "recording": rec,
             "supervisions": [{"id": "s1", "recording_id": "rec1", "start": 0.0, "duration": 3.0, "channel": 0,
                               "text": "HELLO THERE", "speaker": "spk1"}]}
    part = {"id": "c2", "start": 1.0, "duration": 2.0, "channel": 0, "type": "MonoCut", "recording": rec,
            "supervisions": [{"id": "s2", "recording_id": "rec1", "start": 0.5, "duration": 1.0, "channel": 0,
                              "text": "GOOD DAY", "speaker": "spk2"}]}
    cuts = _write(tmp_path / "cuts.jsonl.gz", [whole, part])
    out = tmp_path / "m.jsonl"
    assert run_cli(main, ["lhotse", str(cuts), str(out)]) == 0
    utts = read_manifest(out)
    assert [(u.id, u.offset, u.duration, u.text, u.extra["speaker"]) for u in utts] == [
        ("s1", None, 3.0, "HELLO THERE", "spk1"), ("s2", 1.5, 1.0, "GOOD DAY", "spk2")]
    wave = AudioDataset(utts, Vocabulary(), RATE)[1][0]
    assert len(wave) == RATE  # 1 s read from 1.5 s into the file


def test_recordings_and_supervisions_convert_together(tmp_path, capsys):
    recs = _write(tmp_path / "recordings.jsonl", [_recording(tmp_path / "a.wav"),
                                                   _recording(tmp_path / "b.wav", "rec2", 2.0)])
    sups = _write(tmp_path / "supervisions.jsonl", [
        {"id": "u1", "recording_id": "rec2", "start": 0.0, "duration": 2.0, "text": "one", "speaker": "x"},
        {"id": "u2", "recording_id": "rec1", "start": 2.0, "duration": 1.0, "text": "two", "speaker": "y"}])
    out = tmp_path / "m.jsonl"
    assert run_cli(main, ["lhotse", str(recs), str(out), "--supervisions", str(sups)]) == 0
    assert "2 utterances, 2 speakers" in capsys.readouterr().out
    assert [(u.id, u.offset, u.audio_filepath.endswith(n)) for u, n in zip(read_manifest(out), ("b.wav", "a.wav"))] \
        == [("u1", None, True), ("u2", 2.0, True)]
    _write(sups, [{"id": "u3", "recording_id": "nope", "start": 0.0, "duration": 1.0, "text": "x"}])
    assert run_cli(main, ["lhotse", str(recs), str(out), "--supervisions", str(sups)]) == 2
    assert "supervisions.jsonl:1: supervision 'u3' names recording 'nope'" in capsys.readouterr().err


def test_unsupported_sources_and_untranscribed_supervisions_are_named(tmp_path):
    rec = _recording(tmp_path / "a.wav")
    rec["sources"] = [{"type": "command", "channels": [0], "source": "sox x.sph -t wav -"}]
    cut = {"id": "c1", "start": 0.0, "duration": 3.0, "recording": rec,
           "supervisions": [{"id": "s1", "start": 0.0, "duration": 3.0, "text": "hi"}]}
    with pytest.raises(LhotseError, match="cuts.jsonl:1: recording 'rec1' has source.s. of type command"):
        read_cuts(_write(tmp_path / "cuts.jsonl", [cut]))
    cut["recording"] = _recording(tmp_path / "a.wav")
    cut["supervisions"][0].pop("text")
    with pytest.raises(LhotseError, match="supervision 's1' has no text"):
        read_cuts(_write(tmp_path / "cuts.jsonl", [cut]))
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(LhotseError, match="bad.jsonl:1: not valid JSON"):
        read_cuts(tmp_path / "bad.jsonl")
