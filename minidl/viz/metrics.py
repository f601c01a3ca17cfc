"""A training run's curves, from the metrics.csv that ``python -m minidl.train`` writes."""
import csv
from pathlib import Path

from minidl.training.metrics import COLUMNS, curves_figure
from minidl.viz._figure import show_in_jupyter


def read_metrics(run_dir):
    """The rows of ``run_dir/metrics.csv`` (or of the CSV file given) as dicts of numbers."""
    path = Path(run_dir)
    path = path / "metrics.csv" if path.is_dir() else path
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except OSError as error:
        raise OSError(f"viz.curves: cannot read {path}: {error.strerror or error}") from None
    if not rows or any(column not in rows[0] for column in COLUMNS):
        raise ValueError(f"viz.curves: {path} is not a minidl metrics.csv (expected the columns "
                         f"{', '.join(COLUMNS)} and at least one epoch)")
    try:
        return [{key: (int(row[key]) if key == "epoch" else float(row[key])) for key in COLUMNS} for row in rows]
    except ValueError as error:
        raise ValueError(f"viz.curves: {path} has a value that is not a number: {error}") from None


def curves(run_dir, title=None):
    """A Figure: loss and accuracy per epoch, train against validation (the run's curves.png).
    ``figure.history`` holds the rows drawn."""
    history = read_metrics(run_dir)
    show_in_jupyter()
    figure = curves_figure(history, Path(run_dir).name if title is None else title)
    figure.history = history
    return figure
