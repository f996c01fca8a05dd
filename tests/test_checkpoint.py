"""Checkpoints: atomic writes, corruption detection, pruning, picking the newest good state."""

from __future__ import annotations

import os

import pytest
import torch

from asr.checkpoint import (CheckpointError, epoch_path, link_or_copy, list_checkpoints, load_checkpoint, load_latest,
                            periodic_path, prune_checkpoints, save_checkpoint)


def model_state(step: int | None = None, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    state = {"feature_config": {"n_mels": 16}, "model_config": {"hidden_size": 8}, "vocab": "ab",
             "state_dict": {"w": torch.randn(64, 32, generator=g), "b": torch.zeros(3, dtype=torch.bfloat16)}}
    if step is not None:
        state["progress"] = {"epoch": 0, "batch": step, "step": step}
        state["rng"] = {"torch": torch.get_rng_state(), "python": [1, 2, 3]}
    return state


def test_round_trip_keeps_every_value(tmp_path):
    state = model_state(step=5)
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["format"] == "asr-checkpoint/1" and loaded["progress"] == state["progress"]
    assert all(torch.equal(loaded["state_dict"][k], v) for k, v in state["state_dict"].items())
    assert torch.equal(loaded["rng"]["torch"], state["rng"]["torch"])


def test_truncated_file_is_reported(tmp_path):
    save_checkpoint(tmp_path / "c.pt", model_state())
    data = (tmp_path / "c.pt").read_bytes()
    (tmp_path / "c.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"c.pt: truncated or corrupt checkpoint .*use another one"):
        load_checkpoint(tmp_path / "c.pt")


def test_flipped_bit_in_tensor_data_is_reported(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model_state())
    data = bytearray(path.read_bytes())
    # Find the weight tensor's bytes in the archive and flip one bit in the middle of them.
    raw = model_state()["state_dict"]["w"].numpy().tobytes()
    at = bytes(data).find(raw[:64])
    assert at > 0
    data[at + len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)


def test_other_files_are_refused(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not an asr checkpoint"):
        load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, model_state(seed=1))
    before = path.read_bytes()
    with pytest.raises(Exception):
        save_checkpoint(path, {**model_state(seed=2), "bad": lambda: None})  # cannot be pickled
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left behind


def test_prune_keeps_the_newest(tmp_path):
    for step in (10, 20, 30, 40):
        save_checkpoint(periodic_path(tmp_path, step), model_state(step))
    save_checkpoint(epoch_path(tmp_path, 1), model_state())
    deleted = prune_checkpoints(tmp_path, 2, "step")
    assert [p.name for p in deleted] == ["step-00000010.pt", "step-00000020.pt"]
    assert [p.name for p in list_checkpoints(tmp_path, "step")] == ["step-00000030.pt", "step-00000040.pt"]
    assert [p.name for p in list_checkpoints(tmp_path, "epoch")] == ["epoch-001.pt"]  # other kind untouched
    assert prune_checkpoints(tmp_path, 0, "step") == []  # 0 keeps all


def test_load_latest_skips_a_corrupt_last_and_prefers_the_newest(tmp_path):
    assert load_latest(tmp_path) is None
    save_checkpoint(periodic_path(tmp_path, 10), model_state(10))
    save_checkpoint(periodic_path(tmp_path, 20), model_state(20))
    link_or_copy(periodic_path(tmp_path, 20), tmp_path / "last.pt")
    path, state = load_latest(tmp_path)
    assert path.name == "last.pt" and state["progress"]["step"] == 20

    (tmp_path / "last.pt").unlink()  # last.pt is a hard link of step 20: replace, not overwrite, it
    (tmp_path / "last.pt").write_bytes(b"\0" * 100)  # e.g. copied back from a failed transfer
    warnings = []
    path, state = load_latest(tmp_path, warn=warnings.append)
    assert path.name == "step-00000020.pt" and state["progress"]["step"] == 20
    assert len(warnings) == 1 and "last.pt" in warnings[0] and "older checkpoint" in warnings[0]
    assert (tmp_path / "last.pt").exists()  # kept for inspection, never deleted

    periodic_path(tmp_path, 20).write_bytes(b"junk")
    path, state = load_latest(tmp_path, warn=warnings.append)
    assert path.name == "step-00000010.pt"

    save_checkpoint(tmp_path / "last.pt", model_state(5))
    save_checkpoint(periodic_path(tmp_path, 30), model_state(30))  # killed before last.pt was updated
    path, state = load_latest(tmp_path)
    assert path.name == "step-00000030.pt"


def test_link_or_copy_replaces_atomically(tmp_path):
    save_checkpoint(tmp_path / "a.pt", model_state(1))
    save_checkpoint(tmp_path / "b.pt", model_state(2))
    link_or_copy(tmp_path / "a.pt", tmp_path / "b.pt")
    assert load_checkpoint(tmp_path / "b.pt")["progress"]["step"] == 1
    os.unlink(tmp_path / "a.pt")  # the copy stands on its own
    assert load_checkpoint(tmp_path / "b.pt")["progress"]["step"] == 1


def test_a_checkpoint_without_its_checksum_is_refused(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model_state())
    state = torch.load(path, weights_only=True)
    del state["checksum"]
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="no checksum"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this runs code: it touches a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_checkpoint_whose_pickle_carries_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pt"
    state = model_state()
    torch.save({**state, "format": "asr-checkpoint/1", "extra": _Payload(marker)}, path)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()  # weights_only=True refused the object instead of building it


@pytest.mark.parametrize("keep", [1, 3])
def test_prune_keeps_exactly_the_newest_n(tmp_path, keep):
    """Five periodic checkpoints: keep 1 leaves the newest, keep 3 the three newest (a
    slice from the wrong end, or 1 read as 'keep all', would leave others)."""
    for step in (10, 20, 30, 40, 50):
        save_checkpoint(periodic_path(tmp_path, step), model_state(step))
    deleted = prune_checkpoints(tmp_path, keep, "step")
    kept = [p.name for p in list_checkpoints(tmp_path, "step")]
    assert kept == [f"step-{s:08d}.pt" for s in (10, 20, 30, 40, 50)[-keep:]]
    assert len(deleted) == 5 - keep and not any(p.exists() for p in deleted)


def test_link_or_copy_copies_where_hard_links_fail(tmp_path, monkeypatch):
    """A file system without hard links (some network mounts): a full copy, renamed into place."""
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    save_checkpoint(tmp_path / "a.pt", model_state(7))
    link_or_copy(tmp_path / "a.pt", tmp_path / "b.pt")
    assert (tmp_path / "b.pt").read_bytes() == (tmp_path / "a.pt").read_bytes()
    assert os.stat(tmp_path / "b.pt").st_ino != os.stat(tmp_path / "a.pt").st_ino
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no temporary file left


def test_a_loaded_checkpoint_saved_again_loads(tmp_path):
    """asr-average and asr-export save states they loaded (which carry their old checksum):
    the new file's checksum must cover the new content, not the stale value."""
    save_checkpoint(tmp_path / "c.pt", model_state(3))
    state = load_checkpoint(tmp_path / "c.pt")
    state["state_dict"]["w"] = state["state_dict"]["w"] * 2
    save_checkpoint(tmp_path / "d.pt", state)
    again = load_checkpoint(tmp_path / "d.pt")
    torch.testing.assert_close(again["state_dict"]["w"], 2 * model_state(3)["state_dict"]["w"])


def test_load_latest_skips_a_checkpoint_without_training_state(tmp_path):
    """A weights-only file where last.pt should be (e.g. an exported model copied over it)
    is skipped with a warning, for the newest periodic checkpoint."""
    save_checkpoint(periodic_path(tmp_path, 10), model_state(10))
    save_checkpoint(tmp_path / "last.pt", model_state())  # no progress
    warnings = []
    path, state = load_latest(tmp_path, warn=warnings.append)
    assert path.name == "step-00000010.pt" and state["progress"]["step"] == 10
    assert len(warnings) == 1 and "no training state" in warnings[0]
    assert load_latest(tmp_path)[0].name == "step-00000010.pt"  # without warn= too


def _tampered(path, change) -> None:
    """Rewrite the checkpoint at ``path`` with ``change(state)`` applied and its checksum kept."""
    state = torch.load(path, weights_only=True)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize("change", [
    lambda s: s["state_dict"].__setitem__("w2", s["state_dict"].pop("w")),  # a renamed weight
    lambda s: s["rng"]["python"].__setitem__(1, 7),  # an element of a list
    lambda s: s["progress"].__setitem__("step", 6),  # a plain value
    lambda s: s.__setitem__("vocab", "ba"),
], ids=["key", "list item", "number", "string"])
def test_the_checksum_covers_names_lists_and_plain_values_not_only_tensors(tmp_path, change):
    path = tmp_path / "c.pt"
    save_checkpoint(path, model_state(step=5))
    _tampered(path, change)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_checkpoint(path)


def test_a_checkpoint_lacking_what_a_model_needs_is_refused(tmp_path):
    save_checkpoint(tmp_path / "c.pt", {"state_dict": {}, "vocab": "ab"})  # valid checksum, too little in it
    with pytest.raises(CheckpointError, match="c.pt: checkpoint lacks feature_config, model_config; it was not "
                                              "written by asr-train"):
        load_checkpoint(tmp_path / "c.pt")


def test_load_latest_without_last_pt_takes_the_newest_periodic_one(tmp_path):
    for step in (10, 30, 20):
        save_checkpoint(periodic_path(tmp_path, step), model_state(step))
    path, state = load_latest(tmp_path)
    assert path.name == "step-00000030.pt" and state["progress"]["step"] == 30


def test_pruning_one_kind_leaves_the_other(tmp_path):
    for n in (1, 2, 3):
        save_checkpoint(periodic_path(tmp_path, n), model_state(n))
        save_checkpoint(epoch_path(tmp_path, n), model_state(n))
    prune_checkpoints(tmp_path, 1, kind="epoch")
    assert [p.name for p in list_checkpoints(tmp_path, "epoch")] == [epoch_path(tmp_path, 3).name]
    assert len(list_checkpoints(tmp_path, "step")) == 3
