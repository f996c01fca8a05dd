"""asr.kaldi and ``asr-prepare kaldi``/``split``: Kaldi data directories to manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from asr.corpora.common import PrepareError, split_by_speaker
from asr.data import Utterance, read_manifest
from asr.kaldi import KaldiError, read_kaldi_dir
from asr.prepare import main
from asr.utils import run_cli

RATE = 16000


def _tone(path, seconds, rate=RATE, fmt=None):
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=fmt)


@pytest.fixture
def corpus(tmp_path):
    """speechocean762's layout: corpus/train/{wav.scp,text,utt2spk}, paths relative to corpus/."""
    root = tmp_path / "corpus"
    lengths = {"u1": 0.5, "u2": 1.25, "u3": 0.75, "u4": 2.0}
    speakers = {"u1": "s1", "u2": "s1", "u3": "s2", "u4": "s3"}
    texts = {"u1": "WE CALL IT BEAR", "u2": "LOOK AT ANN'S PANTS!", "u3": "Zero, three-five", "u4": "MARK LIVED"}
    for k, s in lengths.items():
        _tone(root / "WAVE" / f"SPEAKER{speakers[k]}" / f"{k}.wav", s, rate=8000 if k == "u3" else RATE)
    data = root / "train"
    data.mkdir()
    (data / "wav.scp").write_text("".join(f"{k}\tWAVE/SPEAKER{speakers[k]}/{k}.wav\n" for k in lengths))
    (data / "text").write_text("".join(f"{k}\t{t}\n" for k, t in texts.items()))
    (data / "utt2spk").write_text("".join(f"{k} {s}\n" for k, s in speakers.items()))
    return data


def test_reads_paths_relative_to_corpus_root_measures_and_normalises(corpus):
    utts = read_kaldi_dir(corpus)
    assert [u.id for u in utts] == ["u1", "u2", "u3", "u4"]
    assert [u.duration for u in utts] == pytest.approx([0.5, 1.25, 0.75, 2.0])
    assert [u.text for u in utts] == ["we call it bear", "look at ann's pants", "zero three five", "mark lived"]
    assert [u.extra["speaker"] for u in utts] == ["s1", "s1", "s2", "s3"]
    assert all(u.audio_filepath.startswith(str(corpus.parent.resolve())) for u in utts)


def test_cli_writes_a_manifest_that_read_manifest_accepts(corpus, tmp_path, capsys):
    out = tmp_path / "out" / "all.jsonl"
    assert main(["kaldi", str(corpus), str(out)]) == 0
    assert "4 utterances, 3 speakers" in capsys.readouterr().out
    utts = read_manifest(out)
    assert utts[0].text == "we call it bear"
    assert utts[1].extra["speaker"] == "s1"
    assert not list(out.parent.glob(".*.tmp"))  # written atomically


def test_allow_pipes_runs_each_command_once_naming_it_and_keeps_the_audio(corpus, tmp_path, capsys):
    import sys

    src = corpus.parent / "WAVE" / "SPEAKERs2" / "u3.wav"
    with open(corpus / "wav.scp", "a") as f:
        f.write(f"u5 {sys.executable} -c \"import sys; sys.stdout.buffer.write(open('{src}', 'rb').read())\" |\n")
    (corpus / "text").write_text((corpus / "text").read_text() + "u5 HELLO\n")
    out = tmp_path / "x.jsonl"
    assert run_cli(main, ["kaldi", str(corpus), str(out), "--allow-pipes"]) == 0
    err = capsys.readouterr().err
    assert err.count("running (") == 1 and "wav.scp:5" in err
    u5 = next(u for u in read_manifest(out) if u.id == "u5")
    assert u5.audio_filepath == str(tmp_path / "x.audio" / "u5.wav") and u5.text == "hello"
    assert (tmp_path / "x.audio" / "u5.wav").read_bytes() == src.read_bytes()
    with open(corpus / "wav.scp", "a") as f:
        f.write("u6 false |\n")
    (corpus / "text").write_text((corpus / "text").read_text() + "u6 BYE\n")
    assert run_cli(main, ["kaldi", str(corpus), str(out), "--allow-pipes"]) == 2
    assert "the command for 'u6' failed (exit 1" in capsys.readouterr().err


def test_speakers_from_spk2utt_when_utt2spk_is_missing(corpus):
    (corpus / "utt2spk").unlink()
    (corpus / "spk2utt").write_text("a u1 u2\nb u3 u4\n")
    assert [u.extra["speaker"] for u in read_kaldi_dir(corpus)] == ["a", "a", "b", "b"]


def test_pipe_commands_are_refused_and_never_run(corpus, tmp_path, capsys):
    marker = tmp_path / "was_run"
    with open(corpus / "wav.scp", "a") as f:
        f.write(f"u5 touch {marker} |\n")
    (corpus / "text").write_text((corpus / "text").read_text() + "u5 HELLO\n")
    assert run_cli(main, ["kaldi", str(corpus), str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "wav.scp:5" in err and "pipe command" in err and "u5" in err
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()
    assert not (tmp_path / "x.jsonl").exists()


def test_archive_offsets_and_segments_of_unknown_recordings_are_refused(corpus):
    scp = corpus / "wav.scp"
    original = scp.read_text()
    scp.write_text(original + "u5 data/raw.ark:1234\n")
    with pytest.raises(KaldiError, match="archive"):
        read_kaldi_dir(corpus)
    scp.write_text(original)
    (corpus / "segments").write_text("u1 rec1 0.0 1.0\n")
    with pytest.raises(KaldiError, match="segments: 1 segment.*recording that wav.scp lacks"):
        read_kaldi_dir(corpus)


def test_segments_make_utterances_of_pieces_of_a_recording(tmp_path):
    import torch

    from asr.data import AudioDataset
    from asr.text import Vocabulary

    rate = 8000  # read at 16 kHz: offsets in seconds, not samples
    t = np.arange(3 * rate) / rate
    wave = np.concatenate([0.3 * np.sin(2 * np.pi * 300 * t[:rate]), np.zeros(rate),
                           0.3 * np.sin(2 * np.pi * 600 * t[:rate])]).astype(np.float32)
    d = tmp_path / "data"
    d.mkdir()
    sf.write(tmp_path / "rec.wav", wave, rate)
    (d / "wav.scp").write_text(f"rec1 {tmp_path / 'rec.wav'}\n")
    (d / "segments").write_text("a rec1 0.0 1.0\nb rec1 2.0 -1\n")
    (d / "text").write_text("a low tone\nb high tone\n")
    (d / "utt2spk").write_text("a s1\nb s1\n")
    utts = read_kaldi_dir(d)
    assert [(u.id, u.offset, round(u.duration, 3)) for u in utts] == [("a", 0.0, 1.0), ("b", 2.0, 1.0)]
    assert utts[0].extra == {"speaker": "s1", "recording": "rec1"}
    out = tmp_path / "m.jsonl"
    assert run_cli(main, ["kaldi", str(d), str(out)]) == 0
    back = read_manifest(out)  # the offset survives the manifest
    assert [(u.offset, u.duration) for u in back] == [(0.0, 1.0), (2.0, 1.0)]
    ds = AudioDataset(back, Vocabulary(), 16000)
    first, second = ds[0][0], ds[1][0]
    assert len(first) == len(second) == 16000
    spectrum = lambda w: int(torch.fft.rfft(w).abs().argmax())  # noqa: E731  (1 Hz bins for 1 s)
    assert abs(spectrum(first) - 300) <= 2 and abs(spectrum(second) - 600) <= 2
    (d / "segments").write_text("a rec1 0.0 1.0\nb rec1 2.0 3.5\n")
    with pytest.raises(KaldiError, match="'b' ends at 3.50 s, after its recording"):
        read_kaldi_dir(d)
    (d / "segments").write_text("a rec1 1.0 0.5\n")
    with pytest.raises(KaldiError, match="segments:1: expected 'utterance recording start end'"):
        read_kaldi_dir(d)


def test_missing_audio_names_the_utterance(corpus):
    (corpus.parent / "WAVE" / "SPEAKERs2" / "u3.wav").unlink()
    with pytest.raises(KaldiError, match="'u3'.*not found"):
        read_kaldi_dir(corpus)


def test_unreadable_audio_names_the_utterance(corpus):
    (corpus.parent / "WAVE" / "SPEAKERs3" / "u4.wav").write_bytes(b"not audio at all")
    with pytest.raises(KaldiError, match="'u4'.*not readable"):
        read_kaldi_dir(corpus)


def test_duplicate_keys_and_missing_files_are_user_errors(corpus):
    (corpus / "text").write_text("u1 A\nu1 B\n")
    with pytest.raises(KaldiError, match="text:2: duplicate key 'u1'"):
        read_kaldi_dir(corpus)
    (corpus / "text").unlink()
    with pytest.raises(KaldiError, match="text: not found"):
        read_kaldi_dir(corpus)


def test_utterances_without_transcript_or_with_empty_text_are_left_out(corpus):
    (corpus / "text").write_text("u1 HELLO\nu2 ...\nu9 ORPHAN\n")
    utts = read_kaldi_dir(corpus)
    assert [u.id for u in utts] == ["u1"]


def test_audio_root_option(corpus, tmp_path):
    with pytest.raises(KaldiError, match="--audio-root"):
        read_kaldi_dir(corpus, audio_root=tmp_path / "nope")
    assert len(read_kaldi_dir(corpus, audio_root=corpus.parent)) == 4
    (corpus / "wav.scp").write_text("u1 elsewhere/u1.wav\n")
    with pytest.raises(KaldiError, match="not found under"):
        read_kaldi_dir(corpus)


def _utts(speakers_per_utt):
    return [Utterance(f"u{i}", f"/a/{i}.wav", 1.0, "x", {"speaker": s}) for i, s in enumerate(speakers_per_utt)]


def test_split_by_speaker_keeps_speakers_apart():
    speakers = [f"s{i // 3}" for i in range(60)]  # 20 speakers, 3 utterances each
    train, dev, test = split_by_speaker(_utts(speakers), dev=0.1, test=3, seed=1)
    spk = [{u.extra["speaker"] for u in part} for part in (train, dev, test)]
    assert (len(spk[0]), len(spk[1]), len(spk[2])) == (15, 2, 3)
    assert not (spk[0] & spk[1]) and not (spk[0] & spk[2]) and not (spk[1] & spk[2])
    assert len(train) + len(dev) + len(test) == 60
    assert split_by_speaker(_utts(speakers), 0.1, 3, seed=1) == (train, dev, test)  # reproducible
    assert split_by_speaker(_utts(speakers), 0.1, 3, seed=2)[1] != dev


def test_split_folds_cover_every_speaker_once_and_keep_the_test_set():
    speakers = [f"s{i // 2}" for i in range(46)]  # 23 speakers
    _, _, plain_test = split_by_speaker(_utts(speakers), dev=0.1, test=3, seed=4)
    test_spk = {u.extra["speaker"] for u in plain_test}
    dev_sets = []
    for k in range(4):
        train, dev, test = split_by_speaker(_utts(speakers), dev=0.1, test=3, seed=4, folds=4, fold=k)
        assert test == plain_test  # the final test set is the one no fold chooses on
        spk = [{u.extra["speaker"] for u in part} for part in (train, dev)]
        assert not spk[0] & spk[1] and not (spk[0] | spk[1]) & test_spk
        assert len(spk[0]) + len(spk[1]) == 20 and len(spk[1]) == 5
        dev_sets.append(spk[1])
    assert set.union(*dev_sets) == {f"s{i}" for i in range(23)} - test_spk  # each speaker dev once
    assert sum(len(d) for d in dev_sets) == 20
    with pytest.raises(PrepareError, match="--folds 4 --fold 4"):
        split_by_speaker(_utts(speakers), dev=0.1, test=3, folds=4, fold=4)
    with pytest.raises(PrepareError, match="--folds 1"):
        split_by_speaker(_utts(speakers), dev=0.1, test=3, folds=1)


def test_split_errors(tmp_path):
    with pytest.raises(PrepareError, match="hold out fewer"):
        split_by_speaker(_utts(["a", "b"]), dev=1, test=1)
    with pytest.raises(PrepareError, match="no speaker"):
        split_by_speaker([Utterance("u", "/a.wav", 1.0, "x")])


def test_split_cli(corpus, tmp_path):
    all_ = tmp_path / "all.jsonl"
    assert main(["kaldi", str(corpus), str(all_)]) == 0
    paths = [tmp_path / f"{n}.jsonl" for n in ("train", "dev", "test")]
    assert main(["split", str(all_), "--train", str(paths[0]), "--dev", str(paths[1]), "--test", str(paths[2]),
                 "--dev-speakers", "1", "--test-speakers", "1"]) == 0
    parts = [[json.loads(line) for line in p.read_text().splitlines()] for p in paths]
    assert sum(len(p) for p in parts) == 4
    speakers = [{r["speaker"] for r in p} for p in parts]
    assert all(len(s) == 1 for s in speakers) and len(set.union(*speakers)) == 3
