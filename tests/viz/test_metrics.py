"""viz.curves: a run's metrics.csv as the trainer writes it, read back and drawn."""
import numpy as np
import pytest

from minidl import viz
from minidl.training.metrics import write_metrics_csv

HISTORY = [{"epoch": e, "train_loss": 2.0 / e, "train_acc": 0.5 + e / 10, "val_loss": 2.2 / e,
            "val_acc": 0.45 + e / 10, "lr": 0.1, "seconds": 1.5, "images_per_s": 1000.0} for e in (1, 2, 3)]


def test_read_metrics_returns_the_rows_the_trainer_wrote(tmp_path):
    write_metrics_csv(tmp_path / "metrics.csv", HISTORY)
    rows = viz.read_metrics(tmp_path)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    np.testing.assert_allclose([r["val_loss"] for r in rows], [2.2, 1.1, 2.2 / 3], rtol=1e-5)


def test_curves_draw_train_and_validation(tmp_path):
    pytest.importorskip("matplotlib")
    write_metrics_csv(tmp_path / "metrics.csv", HISTORY)
    figure = viz.curves(tmp_path)
    loss_axes, acc_axes = figure.axes
    train, val = loss_axes.get_lines()
    np.testing.assert_allclose(val.get_ydata(), [2.2, 1.1, 2.2 / 3], rtol=1e-5)
    np.testing.assert_allclose(acc_axes.get_lines()[0].get_ydata(), [60, 70, 80], rtol=1e-5)
    assert figure._suptitle.get_text() == tmp_path.name


def test_missing_or_foreign_files_are_one_clear_line(tmp_path):
    with pytest.raises(OSError, match=r"viz.curves: cannot read .*metrics.csv: No such file"):
        viz.read_metrics(tmp_path)
    (tmp_path / "metrics.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="is not a minidl metrics.csv"):
        viz.read_metrics(tmp_path)
    write_metrics_csv(tmp_path / "metrics.csv", HISTORY)
    text = (tmp_path / "metrics.csv").read_text().replace("0.1", "fast", 1)
    (tmp_path / "metrics.csv").write_text(text)
    with pytest.raises(ValueError, match="not a number"):
        viz.read_metrics(tmp_path)
