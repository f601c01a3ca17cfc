"""The training loop: epochs of steps, validation, and a state that can stop and resume at any step.

    trainer = Trainer(model, optimizer, scheduler, train_loader, val_loader)
    trainer.fit(epochs=10, on_epoch_end=lambda row: print(row))

One step: forward, ``loss = cross_entropy(logits, labels)`` (plus ``aux_weight`` times the loss of each
auxiliary output when the model returns a tuple in training, as GoogLeNet does), a check that the loss is
finite, backward, ``optimizer.step()``. A non-finite loss raises :class:`NonFiniteLossError` naming
the step, before backward, so the weights stay those of the last good step.

Ctrl-C does not cut a step in half: the first one sets a flag, the step under way finishes and the loop
raises KeyboardInterrupt between steps, where :meth:`Trainer.state_dict` describes exactly the last
completed step (the weights, the optimizer, the schedule, the data loader's position and minidl's random
generator). A second Ctrl-C interrupts at once; :attr:`Trainer.mid_step` then says the state is torn.
"""
import math
import signal
import sys
import threading
import time
import warnings
from contextlib import contextmanager

from tqdm import TqdmWarning

with warnings.catch_warnings():  # Jupyter without ipywidgets: tqdm.auto falls back to text bars; no warning
    warnings.simplefilter("ignore", TqdmWarning)
    from tqdm.auto import tqdm  # a widget bar in Jupyter (with ipywidgets), a text bar elsewhere

import minidl.functions as F
from minidl import random as _random
from minidl.autograd import no_grad
from minidl.training.metrics import EpochMeter


def in_jupyter():
    """True inside a Jupyter kernel (IPython's kernel app), where progress bars are shown by default."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; ``step`` is the global step (1-based) that produced it."""

    def __init__(self, message, step):
        super().__init__(message)
        self.step = step


class StopFlag:
    requested = False


@contextmanager
def deferred_interrupts(announce=None):
    """While the block runs, a first Ctrl-C only sets ``flag.requested``; a second one raises at once.

    Only the main thread can handle signals: elsewhere the flag is never set and Ctrl-C behaves as usual.
    """
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        if announce is not None:
            announce()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def split_outputs(output):
    """(main logits, [auxiliary logits]) from a model's output: a Tensor, or a tuple led by the main one."""
    if isinstance(output, (tuple, list)):
        return output[0], list(output[1:])
    return output, []


class Trainer:
    """Trains ``model`` with ``optimizer`` (and an optional lr ``scheduler``) on ``train_loader``.

    ``device``: "cpu" or "gpu" (batches are moved there). ``progress``: a tqdm bar per epoch (None: on a
    terminal and in Jupyter, not in a log). ``callbacks``: functions called as ``callback(trainer)`` after every
    completed step.
    """

    def __init__(self, model, optimizer, scheduler, train_loader, val_loader, device="cpu", aux_weight=0.3,
                 progress=None, callbacks=(), announce=None):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.device, self.aux_weight, self.progress = device, aux_weight, progress
        self.callbacks = list(callbacks)
        self.announce = announce or (lambda: print("\nCtrl-C: stopping after this step and saving a checkpoint "
                                                   "(press Ctrl-C again to quit at once, without saving)",
                                                   file=sys.stderr, flush=True))
        self.epoch = 0          # completed epochs
        self.batches_done = 0   # of the epoch under way
        self.step = 0           # completed steps, over all epochs
        self.meter = EpochMeter()
        self.history = []
        self.best = {"metric": "val_acc", "value": None, "epoch": None}
        self.mid_step = False
        self.first_step_seconds = None  # the session's first step, timed apart: it includes Numba's compile
        self._first_step_images = 0     # its images, until the epoch that holds it is reported
        self._mark_consistent()

    # -- the loop ------------------------------------------------------------------------------------
    def fit(self, epochs, on_epoch_end=None):
        """Train until ``epochs`` epochs are complete (counting those done before a resume)."""
        with deferred_interrupts(self.announce) as stop:
            while self.epoch < epochs:
                self.train_epoch(stop, epochs)
                val_loss, val_acc = self.evaluate(self.val_loader, stop)
                row = self.end_epoch(val_loss, val_acc)
                if on_epoch_end is not None:
                    on_epoch_end(row)
                if stop.requested:
                    raise KeyboardInterrupt
        return self.history

    def train_epoch(self, stop=None, epochs=None):
        """Run the rest of the epoch under way (all of it, unless resumed part-way)."""
        loader = self.train_loader
        if self.batches_done >= len(loader):
            return
        self.model.train()
        total = f"/{epochs}" if epochs else ""
        bar = tqdm(total=len(loader), initial=self.batches_done, desc=f"epoch {self.epoch + 1}{total}",
                   unit="batch", leave=False, disable=self.progress_disabled, dynamic_ncols=True)
        start, seconds_before = time.perf_counter(), self.meter.seconds
        try:
            for images, labels in loader:
                self.mid_step = True
                step_start = time.perf_counter()
                loss, correct = self.train_step(images, labels)
                self.mid_step = False
                if self.first_step_seconds is None:
                    self.first_step_seconds = time.perf_counter() - step_start
                    self._first_step_images = len(labels)
                self.batches_done += 1
                self.step += 1
                self.meter.update(loss, correct, len(labels))
                self.meter.seconds = seconds_before + time.perf_counter() - start
                self._mark_consistent()
                if not bar.disable:
                    bar.set_postfix({"loss": f"{self.meter.loss:.4f}", "acc": f"{100 * self.meter.accuracy:.2f}%",
                                     "img/s": f"{self.meter.seen / max(self.meter.seconds, 1e-9):,.0f}"},
                                    refresh=False)
                    bar.update()
                for callback in self.callbacks:
                    callback(self)
                if stop is not None and stop.requested:
                    raise KeyboardInterrupt
        finally:
            bar.close()

    @property
    def progress_disabled(self):
        """progress=None: shown on a terminal (tqdm's None) and in Jupyter, where stderr is no terminal."""
        if self.progress is None:
            return False if in_jupyter() else None
        return not self.progress

    def train_step(self, images, labels):
        """One update; returns (loss, correct predictions). Raises NonFiniteLossError before touching weights."""
        images, labels = self._to_device(images), self._to_device(labels)
        logits, aux = split_outputs(self.model(images))
        loss = F.cross_entropy(logits, labels)
        for extra in aux:
            loss = loss + self.aux_weight * F.cross_entropy(extra, labels)
        value = loss.item()
        if not math.isfinite(value):
            raise NonFiniteLossError(f"loss became {value} at step {self.step + 1} (epoch {self.epoch + 1}, batch "
                                     f"{self.batches_done + 1} of {len(self.train_loader)})", self.step + 1)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        correct = int((logits.data.argmax(axis=1) == labels.data).sum())
        return value, correct

    def evaluate(self, loader, stop=None):
        """(mean loss, accuracy) of the model in eval mode over ``loader``."""
        self.model.eval()
        meter = EpochMeter()
        bar = tqdm(total=len(loader), desc="  validation", unit="batch", leave=False,
                   disable=self.progress_disabled, dynamic_ncols=True)
        try:
            with no_grad():
                for images, labels in loader:
                    images, labels = self._to_device(images), self._to_device(labels)
                    logits, _ = split_outputs(self.model(images))
                    loss = F.cross_entropy(logits, labels).item()
                    meter.update(loss, int((logits.data.argmax(axis=1) == labels.data).sum()), len(labels))
                    bar.update()
                    if stop is not None and stop.requested:
                        raise KeyboardInterrupt
        finally:
            bar.close()
            self.model.train()
        return meter.loss, meter.accuracy

    def end_epoch(self, val_loss, val_acc):
        """Record the finished epoch, step the lr schedule; returns the epoch's metrics row."""
        row = {"epoch": self.epoch + 1, "train_loss": self.meter.loss, "train_acc": self.meter.accuracy,
               "val_loss": val_loss, "val_acc": val_acc, "lr": self.current_lr(), "seconds": self.meter.seconds,
               "images_per_s": self.meter.seen / self.meter.seconds if self.meter.seconds else 0.0}
        if self._first_step_images:  # this epoch holds the session's first step: its rate leaves it out
            seen, seconds = self.meter.seen - self._first_step_images, self.meter.seconds - self.first_step_seconds
            if seen > 0 and seconds > 0:
                row["images_per_s"] = seen / seconds
            row["first_step_seconds"] = self.first_step_seconds
            self._first_step_images = 0
        self.history.append(row)
        if self.scheduler is not None:
            if hasattr(self.scheduler, "is_better"):  # ReduceLROnPlateau watches the validation loss
                self.scheduler.step(val_loss)
            else:
                self.scheduler.step()
        self.epoch += 1
        self.batches_done = 0
        self.meter = EpochMeter()
        row["is_best"] = math.isfinite(val_acc) and (self.best["value"] is None or val_acc > self.best["value"])
        if row["is_best"]:
            self.best = {"metric": "val_acc", "value": val_acc, "epoch": self.epoch}
        self._mark_consistent()
        return row

    def current_lr(self):
        return float(self.optimizer.param_groups[0]["lr"])

    def _to_device(self, tensor):
        return tensor if self.device == "cpu" else tensor.to(self.device)

    # -- state -------------------------------------------------------------------------------------------
    def _mark_consistent(self):
        """Remember the data position and random state as of the last completed step."""
        self._rng_state = {"minidl": _random.get_rng_state(), "train_loader": self.train_loader.state_dict()}

    def progress_state(self):
        return {"epoch": self.epoch, "batches_done": self.batches_done, "step": self.step,
                "epoch_meter": self.meter.state_dict(), "best": dict(self.best),
                "history": [{k: v for k, v in row.items() if k not in ("is_best", "first_step_seconds")}
                            for row in self.history]}

    def rng_state(self):
        return self._rng_state

    def load_state(self, progress, rng):
        """Continue from a checkpoint's ``progress`` and ``rng`` (weights, optimizer and schedule load apart)."""
        self.epoch, self.batches_done, self.step = progress["epoch"], progress["batches_done"], progress["step"]
        self.meter = EpochMeter(**progress["epoch_meter"])
        self.best = dict(progress["best"])
        self.history = [dict(row) for row in progress["history"]]
        self.train_loader.load_state_dict(rng["train_loader"])
        _random.set_rng_state(rng["minidl"])
        self._mark_consistent()
