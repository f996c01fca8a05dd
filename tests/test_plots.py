import json

import matplotlib.axes
import matplotlib.image
import pytest

from asr.plots import plot_curves


def _epoch(e, wer):
    return {"kind": "epoch", "epoch": e, "step": 10 * e, "train_loss": 3.0 / e, "dev_loss": 3.5 / e,
            "dev_wer": wer, "dev_cer": wer / 2, "seconds": 1.0}


def test_plot_curves_writes_a_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    records = [{"kind": "train", "epoch": 0, "step": 5, "loss": 3.0}, _epoch(1, 0.9), _epoch(2, 0.5), _epoch(3, 0.3)]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "curves.png"
    plot_curves(metrics, out)
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 100 and image.shape[1] > 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "metrics.jsonl"]  # no temporary left


def test_no_epoch_yet_writes_nothing(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps({"kind": "train", "epoch": 0, "step": 5, "loss": 3.0}) + "\n")
    plot_curves(metrics, tmp_path / "curves.png")
    assert not (tmp_path / "curves.png").exists()


def test_a_partial_line_and_repeated_epochs_after_a_resume_are_tolerated(tmp_path, monkeypatch):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(json.dumps(_epoch(1, 0.9)) + "\n" + json.dumps(_epoch(2, 0.8))[:25]  # killed mid-write
                       + json.dumps(_epoch(2, 0.6)) + "\n\n" + json.dumps(_epoch(3, 0.4)) + "\n"
                       + json.dumps(_epoch(3, 0.3)) + "\n")  # epoch 3 again after resuming
    plotted = []
    original = matplotlib.axes.Axes.plot

    def spy(self, x, y, *args, **kwargs):
        plotted.append((list(x), list(y)))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    plot_curves(metrics, tmp_path / "curves.png")
    assert (tmp_path / "curves.png").is_file()
    # the line holding the partial record is unreadable; epoch 3 is its last record
    train_loss, dev_loss, wer, cer = plotted
    assert train_loss == ([1, 3], [3.0, 1.0])
    assert wer == ([1, 3], [pytest.approx(90.0), pytest.approx(30.0)])
