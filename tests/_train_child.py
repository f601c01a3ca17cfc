"""A training run for the kill -9 test: ``python tests/_train_child.py KILL_AT ARGS...``.

Counts events (every training step, every forward pass (so every validation batch too), every
checkpoint write half-way through, and every rename into place) and sends itself SIGKILL at event
``KILL_AT`` (0: never). At exit it prints ``events KIND,KIND,...`` (one kind per event: step, forward,
mid-write, rename) on stderr, so the test can draw kill points of every kind. matplotlib is hidden so the
run is quick (curves.png is skipped; the checkpoints and metrics are the same).
"""
import atexit
import os
import signal
import sys

sys.modules["matplotlib"] = None

from minidl import serialization  # noqa: E402
from minidl.models import registry  # noqa: E402
from minidl.train import main  # noqa: E402
from minidl.training import loop  # noqa: E402
from minidl.training.recipes import CIFAR_RESNET  # noqa: E402
from tests.test_train import TINY, TinyNet  # noqa: E402

kill_at, events = int(sys.argv[1]), []


def event(kind):
    events.append(kind)
    if len(events) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)


def counted(function, kind):
    def wrapper(*args, **kwargs):
        event(kind)
        return function(*args, **kwargs)
    return wrapper


def half_then_event(write):
    def wrapper(f, header_bytes, arrays):
        f.write(b"PK\x03\x04")  # a partial archive on disk when the kill lands here
        f.flush()
        event("mid-write")
        f.seek(0)
        f.truncate()
        return write(f, header_bytes, arrays)
    return wrapper


loop.Trainer.train_step = counted(loop.Trainer.train_step, "step")
loop.split_outputs = counted(loop.split_outputs, "forward")  # every step's and every validation batch's
serialization._write_archive = half_then_event(serialization._write_archive)
os.replace = counted(os.replace, "rename")  # in this child process only: atomic_write's renames into place
atexit.register(lambda: print(f"events {','.join(events)}", file=sys.stderr))
registry.register_model("tiny test net for CIFAR-like images", "none", name=TINY, recipe=CIFAR_RESNET)(TinyNet)
sys.exit(main(sys.argv[2:]))
