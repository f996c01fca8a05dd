import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.data import (AudioDataset, DataConfig, DurationBatchSampler, ManifestError, Utterance, collate,
                      ctc_min_frames, drop_unalignable, read_manifest, read_manifest_table, read_manifests,
                      write_manifest)
from asr.features import FeatureConfig
from asr.models import BiRNNConfig
from asr.recognizer import output_steps
from asr.text import Vocabulary
from asr.utils import UserError


@pytest.fixture
def wav_dir(tmp_path) -> Path:
    """A manifest folder with ``audio/x.wav`` (0.5 s) and ``audio/y.wav`` (0.25 s) at 16 kHz."""
    (tmp_path / "audio").mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("x", 8000), ("y", 4000)):
        sf.write(tmp_path / "audio" / f"{name}.wav", (0.1 * rng.standard_normal(n)).astype(np.float32), 16000)
    return tmp_path


def _write_lines(path: Path, lines: list) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


# --- manifests -------------------------------------------------------------------------

def test_read_manifest_resolves_relative_paths_against_its_folder(wav_dir, monkeypatch, tmp_path_factory):
    manifest = _write_lines(wav_dir / "m.jsonl", [
        {"audio_filepath": "audio/x.wav", "duration": 0.5, "text": "Hello", "id": "u1", "speaker": "s1"},
        "",
        {"audio_filepath": str(wav_dir / "audio/y.wav"), "duration": 0.25, "text": "world"},
    ])
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # resolution must not depend on the cwd
    utts = read_manifest(manifest)
    assert [u.id for u in utts] == ["u1", "m-3"]  # default id: <stem>-<line>
    assert Path(utts[0].audio_filepath) == wav_dir / "audio/x.wav"
    assert Path(utts[1].audio_filepath) == wav_dir / "audio/y.wav"
    assert (utts[0].duration, utts[0].text, utts[0].extra) == (0.5, "Hello", {"speaker": "s1"})


def test_several_manifests_read_as_one_in_order(wav_dir, tmp_path):
    (wav_dir / "other").mkdir()
    a = _write_lines(wav_dir / "a.jsonl", [{"audio_filepath": "audio/x.wav", "duration": 0.5, "text": "x", "id": "a1"}])
    b = _write_lines(wav_dir / "other" / "b.jsonl", [
        {"audio_filepath": "../audio/y.wav", "duration": 0.25, "text": "y", "id": "b1"},
        {"audio_filepath": "../audio/x.wav", "duration": 0.5, "text": "z", "id": "b2"}])
    utts = read_manifests(f"{a}, {b}")  # each manifest's relative paths resolve against its own folder
    assert [(u.id, Path(u.audio_filepath).resolve()) for u in utts] == [
        ("a1", wav_dir / "audio/x.wav"), ("b1", wav_dir / "audio/y.wav"), ("b2", wav_dir / "audio/x.wav")]
    assert [u.id for u in read_manifests(str(b))] == ["b1", "b2"]
    with pytest.raises(ManifestError, match=r"'a1' is also in .*a\.jsonl"):
        read_manifests(f"{a},{a}")
    with pytest.raises(ManifestError, match="empty manifest path"):
        read_manifests(f"{a},")


def test_write_then_read_round_trips_with_relative_paths(wav_dir, tmp_path):
    utts = [Utterance("a", str(wav_dir / "audio/x.wav"), 0.5, "x", {"lang": "en"}),
            Utterance("b", str(wav_dir / "audio/y.wav"), 0.25, "y")]
    out = wav_dir / "sub" / "out.jsonl"
    write_manifest(out, utts)
    first = json.loads(out.read_text().splitlines()[0])
    assert first == {"audio_filepath": "../audio/x.wav", "duration": 0.5, "text": "x", "id": "a", "lang": "en"}
    again = read_manifest(out)
    assert [(Path(u.audio_filepath).resolve(), u.duration, u.text, u.id, u.extra) for u in again] == \
        [(Path(u.audio_filepath).resolve(), u.duration, u.text, u.id, u.extra) for u in utts]
    assert not [p for p in out.parent.iterdir() if p.name != "out.jsonl"]  # no temporary left behind


GOOD = {"audio_filepath": "audio/x.wav", "duration": 0.5, "text": "hi"}


@pytest.mark.parametrize("bad, message", [
    ("{not json", "not valid JSON"),
    ([1, 2], "expected a JSON object"),
    ({"audio_filepath": "audio/x.wav", "text": "hi"}, "missing key(s) duration"),
    ({**GOOD, "duration": -1}, "duration must be a positive number"),
    ({**GOOD, "duration": "0.5"}, "duration must be a positive number"),
    ({**GOOD, "duration": True}, "duration must be a positive number"),
    ({**GOOD, "text": None}, "text must be a string"),
    ({**GOOD, "audio_filepath": ""}, "audio_filepath must be a non-empty string"),
    ({**GOOD, "audio_filepath": "audio/nope.wav"}, "not found"),
    ({**GOOD, "id": "m-1"}, "duplicate id 'm-1'"),
    ({**GOOD, "duration": 0}, "duration must be a positive number"),
    ({**GOOD, "duration": float("inf")}, "duration must be a positive number"),
    ({**GOOD, "text": 5}, "text must be a string, got int"),
    ([1], "expected a JSON object, got list"),
    ({**GOOD, "offset": -0.5}, "offset must be seconds >= 0 into the recording, got -0.5"),
    ({**GOOD, "offset": float("nan")}, "offset must be seconds >= 0"),
    ({**GOOD, "offset": True}, "offset must be seconds >= 0"),
    ({**GOOD, "offset": "1"}, "offset must be seconds >= 0"),
    ("\ufeff" + json.dumps(GOOD), "not valid JSON"),  # a byte-order mark is fine on line 1 only
])
def test_bad_manifest_lines_name_the_line_and_the_problem(wav_dir, bad, message):
    manifest = _write_lines(wav_dir / "m.jsonl", [GOOD, "   ", bad])
    with pytest.raises(ManifestError) as err:
        read_manifest(manifest)
    assert isinstance(err.value, UserError)
    text = str(err.value)
    assert text.startswith(f"{manifest}:3: ") and message in text and "\n" not in text


def test_a_byte_order_mark_and_an_offset_of_zero_are_fine(wav_dir):
    manifest = _write_lines(wav_dir / "m.jsonl", ["\ufeff" + json.dumps({**GOOD, "offset": 0}), GOOD])
    first = read_manifest(manifest)[0]
    assert first.text == "hi" and first.offset == 0.0


def test_missing_files_are_allowed_when_not_checked(wav_dir):
    manifest = _write_lines(wav_dir / "m.jsonl", [{**GOOD, "audio_filepath": "later.wav"}])
    assert read_manifest(manifest, check_files=False)[0].audio_filepath == str(wav_dir / "later.wav")


def test_whole_file_problems(wav_dir):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(wav_dir / "none.jsonl")
    with pytest.raises(ManifestError, match="is a directory"):
        read_manifest(wav_dir)
    with pytest.raises(ManifestError, match="no utterances"):
        read_manifest(_write_lines(wav_dir / "empty.jsonl", ["", " "]))
    latin1 = wav_dir / "latin1.jsonl"
    latin1.write_bytes((json.dumps(GOOD) + "\n").encode() + '{"text": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(ManifestError, match=r"latin1.jsonl:2: not UTF-8"):
        read_manifest(latin1)


# --- dataset, collate, CTC feasibility --------------------------------------------------

def test_dataset_items_and_collate(wav_dir):
    vocab = Vocabulary()
    utts = [Utterance("a", str(wav_dir / "audio/x.wav"), 0.5, "Ab"),
            Utterance("b", str(wav_dir / "audio/y.wav"), 0.25, "c d e")]
    ds = AudioDataset(utts, vocab, 16000)
    wave, ids, i = ds[1]
    assert wave.shape == (4000,) and wave.dtype == torch.float32 and i == 1
    assert ids.tolist() == vocab.encode("c d e")
    batch = collate([ds[0], ds[1]])
    assert batch.waves.shape == (2, 8000) and batch.wave_lengths.tolist() == [8000, 4000]
    assert (batch.waves[1, 4000:] == 0).all() and torch.equal(batch.waves[1, :4000], wave)
    assert batch.targets.tolist() == [vocab.encode("ab") + [0, 0, 0], vocab.encode("c d e")]
    assert batch.target_lengths.tolist() == [2, 5] and batch.indices == [0, 1]


def test_feature_collate_adds_the_features_of_the_padded_batch(wav_dir):
    from asr.data import FeatureCollate
    from asr.features import FeatureConfig, LogMel

    vocab = Vocabulary()
    ds = AudioDataset([Utterance("a", str(wav_dir / "audio/x.wav"), 0.5, "ab"),
                       Utterance("b", str(wav_dir / "audio/y.wav"), 0.25, "c")], vocab, 16000)
    logmel = LogMel(FeatureConfig(n_mels=20))
    plain, batch = collate([ds[0], ds[1]]), FeatureCollate(logmel)([ds[0], ds[1]])
    assert plain.feats is None and plain.frames is None
    feats, frames = logmel(plain.waves, plain.wave_lengths)  # (2, frames, 20)
    assert torch.equal(batch.feats, feats) and torch.equal(batch.frames, frames) and frames.tolist() == [51, 26]
    assert not batch.feats.requires_grad
    assert torch.equal(batch.waves, plain.waves) and torch.equal(batch.targets, plain.targets)


def test_dataset_resamples_to_the_requested_rate(wav_dir):
    utt = Utterance("a", str(wav_dir / "audio/x.wav"), 0.5, "a")
    assert AudioDataset([utt], Vocabulary(), 8000)[0][0].shape == (4000,)


def test_transform_randomness_depends_only_on_the_item_seed(wav_dir):
    utt = Utterance("a", str(wav_dir / "audio/x.wav"), 0.5, "a")
    noisy = AudioDataset([utt], Vocabulary(), 16000, transform=lambda w, rng, batch_rng: w + float(rng.random()))
    assert torch.equal(noisy[(0, 7)][0], noisy[(0, 7)][0])
    assert not torch.equal(noisy[(0, 7)][0], noisy[(0, 8)][0])
    shared = AudioDataset([utt], Vocabulary(), 16000, transform=lambda w, rng, batch_rng: w + float(batch_rng.random()))
    assert torch.equal(shared[(0, 7, 3)][0], shared[(0, 8, 3)][0])  # the batch seed alone decides
    assert not torch.equal(shared[(0, 7, 3)][0], shared[(0, 7, 4)][0])


def test_ctc_min_frames_counts_a_blank_between_repeats():
    assert ctc_min_frames([]) == 0
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([5, 5, 5, 2, 2]) == 8


def test_unalignable_and_empty_utterances_are_dropped_with_a_count(caplog):
    vocab, cfg = Vocabulary(), FeatureConfig()
    steps = lambda d: output_steps(d, cfg, BiRNNConfig(subsample=3))  # noqa: E731 - 0.3 s: 11 steps
    utts = [Utterance("ok", "a.wav", 0.3, "hello"),
            Utterance("long", "b.wav", 0.3, "a much too long transcript"),
            Utterance("repeats", "c.wav", 0.3, "aaaaaa"),  # 6 tokens, 11 frames with blanks
            Utterance("empty", "d.wav", 0.3, "?!")]
    with caplog.at_level(logging.WARNING, logger="asr.data"):
        kept = drop_unalignable(utts, vocab, steps, "train")
    assert [u.id for u in kept] == ["ok", "repeats"]
    assert "train: dropped 2 of 4 utterances whose transcript is empty or too long for CTC to align" in caplog.text
    caplog.clear()
    one = [Utterance("a", "a.wav", 0.3, "a"), Utterance("euro", "e.wav", 0.3, "€ x€")]  # one character is enough
    with caplog.at_level(logging.WARNING, logger="asr.data"):
        assert [u.id for u in drop_unalignable(one, vocab, steps, "dev")] == ["a", "euro"]
    assert caplog.messages == ["dev: 2 characters outside the vocabulary were dropped: '€' x2"]
    caplog.clear()
    assert drop_unalignable(kept, vocab, steps) == kept and not caplog.text


# --- duration-bucketed batches ----------------------------------------------------------

def _durations(n=200, seed=7):
    rng = random.Random(seed)
    return [rng.uniform(0.5, 15.0) for _ in range(n)]


def test_batches_cover_every_item_once_and_respect_the_limits():
    durations = _durations()
    sampler = DurationBatchSampler(durations, max_seconds=60, max_batch_size=8, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    assert sorted(i for b in batches for i in b) == list(range(len(durations)))
    for b in batches:
        assert len(b) <= 8
        assert len(b) == 1 or len(b) * max(durations[i] for i in b) <= 60


def test_an_utterance_longer_than_the_limit_gets_a_batch_of_its_own():
    batches = list(DurationBatchSampler([1.0, 50.0, 1.0], max_seconds=10, shuffle=False))
    assert [1] in batches and sorted(i for b in batches for i in b) == [0, 1, 2]


def test_batches_are_deterministic_per_seed_and_epoch():
    durations = _durations()
    a, b = DurationBatchSampler(durations, 60, seed=1), DurationBatchSampler(durations, 60, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first  # a new epoch reshuffles
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(DurationBatchSampler(durations, 60, seed=2)) != first


def test_length_sorted_buckets_pad_less_than_random_batches():
    durations = _durations()
    sampler = DurationBatchSampler(durations, 60, seed=0)
    padding = sampler.padding_fraction()
    rng = random.Random(0)
    order = list(range(len(durations)))
    rng.shuffle(order)
    sizes = [len(b) for b in sampler]
    padded = real = 0.0
    start = 0
    for n in sizes:  # the same batch sizes, drawn in random order
        ds = [durations[i] for i in order[start:start + n]]
        padded, real, start = padded + max(ds) * n, real + sum(ds), start + n
    assert 0 <= padding < 0.1 < 1 - real / padded
    assert DurationBatchSampler([1.0, 1.0], 100).padding_fraction() == 0.0
    assert DurationBatchSampler([1.0, 3.0], 100, shuffle=False).padding_fraction() == pytest.approx(1 / 3)


def test_unshuffled_batches_are_in_duration_order():
    durations = _durations(50)
    flat = [i for b in DurationBatchSampler(durations, 30, shuffle=False) for i in b]
    assert [durations[i] for i in flat] == sorted(durations)


def test_skip_resumes_inside_an_epoch():
    sampler = DurationBatchSampler(_durations(), 60, seed=5)
    sampler.set_epoch(2)
    full = list(sampler)
    sampler.skip = 4
    assert list(sampler) == full[4:] and len(sampler) == len(full) - 4


def test_item_seeds_depend_on_seed_epoch_and_index():
    durations = _durations(40)
    plain = DurationBatchSampler(durations, 30, seed=1)
    seeded = DurationBatchSampler(durations, 30, seed=1, item_seeds=True)
    keyed = list(seeded)
    assert [[i for i, _, _ in b] for b in keyed] == list(plain)
    assert all({bs for _, _, bs in b} == {b[0][1]} for b in keyed)  # one batch seed: the first item's
    seeds = {i: s for b in keyed for i, s, _ in b}
    assert len(set(seeds.values())) == len(durations)
    seeded.set_epoch(1)
    again = {i: s for b in seeded for i, s, _ in b}
    assert all(again[i] != seeds[i] for i in seeds)
    seeded.set_epoch(0)
    assert {i: s for b in seeded for i, s, _ in b} == seeds
    negative = [s for b in DurationBatchSampler(durations, 30, seed=-5, item_seeds=True) for _, s, _ in b]
    assert all(np.random.default_rng(s) for s in negative)  # numpy refuses negative seeds


def test_shards_are_disjoint_equal_sized_and_together_cover_the_batches():
    durations = _durations(101)
    whole = list(DurationBatchSampler(durations, 40, seed=9))
    shards = [DurationBatchSampler(durations, 40, seed=9, num_replicas=3, rank=r) for r in range(3)]
    got = [list(s) for s in shards]
    assert len({len(g) for g in got}) == 1 and all(len(s) == len(g) for s, g in zip(shards, got))
    flat = [tuple(b) for g in got for b in g]
    assert len(flat) == len(set(flat))  # disjoint
    assert set(flat) <= {tuple(b) for b in whole}
    assert len(whole) - len(flat) < 3  # only the remainder is trimmed
    items = [i for b in flat for i in b]
    assert len(items) == len(set(items))


@pytest.mark.parametrize("kwargs", [{"max_seconds": 0}, {"max_seconds": 10, "num_replicas": 2, "rank": 2},
                                    {"max_seconds": 10, "num_replicas": 0}])
def test_bad_sampler_arguments(kwargs):
    with pytest.raises(ValueError):
        DurationBatchSampler([1.0], **kwargs)


def test_data_config_defaults():
    cfg = DataConfig()
    assert Vocabulary(cfg.chars) == Vocabulary()
    assert cfg.max_batch_seconds > 0 and cfg.max_batch_size > 0


def test_ctc_min_frames_of_a_normalised_text_matches_its_token_ids():
    vocab = Vocabulary()
    for text in ["", "a", "aab", "hello  zoo", "aaa bb'' c", "mississippi"]:
        norm = vocab.normalize(text)
        assert ctc_min_frames(norm) == ctc_min_frames(vocab.encode(text)), text


def _table_records(tmp_path: Path, n: int) -> Path:
    sf.write(tmp_path / "a.wav", np.zeros(3 * 16000, dtype=np.float32), 16000)
    rows = [{"audio_filepath": "a.wav", "duration": 0.5 + i % 7 / 10, "text": f"word {i} é", "id": f"u{i}",
             "speaker": "s1", **({"offset": 0.25} if i % 3 == 0 else {})} for i in range(n)]
    return _write_lines(tmp_path / "m.jsonl", rows)


def test_the_utterance_table_reads_like_the_list(tmp_path):
    path = _table_records(tmp_path, 50)
    table, listed = read_manifest_table(str(path)), read_manifests(str(path))
    assert len(table) == 50 and [dataclasses_fields(u) for u in table] == [dataclasses_fields(u) for u in listed]
    assert [u.id for u in table[10:20:3]] == ["u10", "u13", "u16", "u19"]
    assert [u.id for u in table.take([7, 2])] == ["u7", "u2"] and table.take([7, 2]).durations.tolist() == [0.5, 0.7]
    vocab = Vocabulary()
    for key in (0, 1, (3, 5, 9)):  # the dataset gives the same items from either
        for a, b in zip(AudioDataset(table, vocab, 16000)[key], AudioDataset(listed, vocab, 16000)[key]):
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    kept = drop_unalignable(table, vocab, lambda d: int(d * 20), "t")  # "word 12 é" needs 15+ frames: 0.8 s
    assert isinstance(kept, type(table))
    assert [u.id for u in kept] == [u.id for u in drop_unalignable(listed, vocab, lambda d: int(d * 20), "t")]


def test_the_utterance_table_holds_no_object_per_utterance(tmp_path):
    """Forked loader workers share the table without copying it only if it has no
    per-utterance Python objects (their reference counts and collector headers get written)."""
    import gc

    path = _table_records(tmp_path, 3000)
    gc.collect()
    before = len(gc.get_objects())
    table = read_manifest_table(str(path))
    gc.collect()
    assert len(table) == 3000 and len(gc.get_objects()) - before < 100
    assert table.nbytes < 3000 * 200  # ids, absolute paths, texts, two floats: under 200 bytes each here


def dataclasses_fields(u):
    return (u.id, u.audio_filepath, u.duration, u.text, u.offset)


def test_manifest_ids_from_utt_id_or_line_and_paths_from_home(tmp_path, monkeypatch):
    """Kaldi-style ``utt_id`` names an utterance when ``id`` is absent (else file stem and
    line); ``~/`` in audio paths is the user's home."""
    monkeypatch.setenv("HOME", str(tmp_path))
    sf.write(tmp_path / "a.wav", np.zeros(1600, dtype=np.float32), 16000)
    path = _write_lines(tmp_path / "sub.jsonl", [
        {"audio_filepath": "~/a.wav", "duration": 0.1, "text": "x", "utt_id": "k1"},
        {"audio_filepath": "a.wav", "duration": 0.1, "text": "y"}])
    a, b = read_manifest(path)
    assert (a.id, a.audio_filepath) == ("k1", str(tmp_path / "a.wav"))
    assert (b.id, b.audio_filepath) == ("sub-2", str(tmp_path / "a.wav"))


def test_a_manifest_from_a_pipe_gets_its_relative_audio_paths_resolved_here(tmp_path, monkeypatch):
    import os
    import threading

    from asr.data import stream_manifest

    monkeypatch.chdir(tmp_path)
    fifo = tmp_path / "m.fifo"
    os.mkfifo(fifo)
    lines = [json.dumps({"audio_filepath": "wav/a.wav", "duration": 1.0, "text": "x"}),
             json.dumps({"audio_filepath": "/abs/b.wav", "duration": 1.0, "text": "ü"}, ensure_ascii=False),
             json.dumps({"audio_filepath": "~/c.wav", "duration": 1.0, "text": "y"}),
             "{not json", json.dumps(["a", "list"])]
    writer = threading.Thread(target=lambda: fifo.write_text("\n".join(lines) + "\n", encoding="utf-8"))
    writer.start()
    with stream_manifest(fifo) as copy:  # the copy lives as long as the context
        got = Path(copy).read_text(encoding="utf-8").splitlines()
    writer.join()
    assert json.loads(got[0])["audio_filepath"] == str(tmp_path / "wav" / "a.wav")
    assert got[1:] == lines[1:]  # absolute, home-relative and unreadable lines pass through as they are
    regular = tmp_path / "m.jsonl"
    regular.write_text(lines[0] + "\n")
    with stream_manifest(regular) as same:
        assert same == str(regular)  # a regular file is read in place, relative to its own folder


def test_a_batch_may_fill_its_seconds_exactly_but_not_more():
    """Padded seconds (longest x count) up to ``max_seconds`` inclusive: four 1 s utterances
    in 2 s batches are two pairs; in 1.9 s batches, four singles."""
    assert sorted(map(len, DurationBatchSampler([1.0] * 4, max_seconds=2.0, shuffle=False))) == [2, 2]
    assert sorted(map(len, DurationBatchSampler([1.0] * 4, max_seconds=1.9, shuffle=False))) == [1, 1, 1, 1]
