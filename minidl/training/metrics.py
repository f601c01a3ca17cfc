"""Running averages for one epoch, the metrics.csv file and the loss/accuracy curves.

metrics.csv has one row per completed epoch::

    epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds, images_per_s

``train_loss`` and ``train_acc`` average over the epoch's batches as the weights changed (weighted by
batch size), ``val_*`` are measured after the epoch in eval mode. ``lr`` is the rate the epoch trained
with, ``seconds`` its training time (data, forward, backward and update, not the validation), and
``images_per_s`` the training images per second; in the first epoch of a session (a start or a resume)
the first step is left out of that rate and reported apart, since it holds Numba's one-time compile.
"""
import csv
import io

from minidl.serialization import atomic_write

COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds", "images_per_s")


class EpochMeter:
    """Sums of loss and correct predictions over the batches seen so far."""

    def __init__(self, loss_sum=0.0, correct=0, seen=0, seconds=0.0):
        self.loss_sum, self.correct, self.seen, self.seconds = float(loss_sum), int(correct), int(seen), float(seconds)

    def update(self, loss, correct, count):
        self.loss_sum += loss * count
        self.correct += correct
        self.seen += count

    @property
    def loss(self):
        return self.loss_sum / self.seen if self.seen else float("nan")

    @property
    def accuracy(self):
        return self.correct / self.seen if self.seen else float("nan")

    def state_dict(self):
        return {"loss_sum": self.loss_sum, "correct": self.correct, "seen": self.seen, "seconds": self.seconds}


def write_metrics_csv(path, history):
    """Rewrite ``path`` with every row of ``history`` (dicts with :data:`COLUMNS`), atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({key: _format(row[key]) for key in COLUMNS})
    atomic_write(path, lambda f: f.write(text.getvalue().encode("utf-8")))


def _format(value):
    return f"{value:.6g}" if isinstance(value, float) else value


def plot_curves(path, history, title=""):
    """Loss and accuracy per epoch, train against validation, in a PNG. False when matplotlib is missing."""
    try:
        figure = curves_figure(history, title)
    except ImportError:
        return False
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=100))
    return True


def curves_figure(history, title=""):
    """The Figure of :func:`plot_curves` (``minidl.viz.curves`` shows it); ImportError without matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    epochs = [row["epoch"] for row in history]
    figure = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(figure)  # the Agg canvas: no display needed, pyplot's global state untouched
    loss_axes, acc_axes = figure.subplots(1, 2)
    for axes, key, label in ((loss_axes, "loss", "loss"), (acc_axes, "acc", "accuracy (%)")):
        scale = 100 if key == "acc" else 1
        for split, style in (("train", "o-"), ("val", "s-")):
            axes.plot(epochs, [row[f"{split}_{key}"] * scale for row in history], style, label=split, markersize=3)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    if title:
        figure.suptitle(title)
    return figure
