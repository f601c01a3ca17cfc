"""The run folder (``--out``): checked before any data is read, refused when it holds another run, locked
while a run owns it, and cleaned of its own stale temporary files.

    lock = claim_run_folder(Path("runs/lenet5"), resuming_here=False, overwrite=False)
    ...                          # train, writing config.json, metrics.csv, checkpoints, curves.png
    lock.release()

A folder *holds a run* when it has one of :data:`RUN_FILES`. Training into it is refused (exit 2) unless
the run is resumed there (``--resume`` of a checkpoint in it) or ``--overwrite`` is given, which removes
exactly those files (the ones minidl wrote) and nothing else.

The lock is ``.minidl-train.lock`` holding the owner's PID, host and start time, and an advisory
``fcntl.flock`` on it while the run lives. The kernel drops the flock when the process dies, however it
dies, so a lock file left by ``kill -9`` is stale by construction; where ``fcntl`` does not exist (Windows)
a lock file naming another PID is taken as held: delete it by hand once that run is gone. A second run
into a locked folder stops at once with the owner's PID.
"""
import json
import os
import socket
import time
from pathlib import Path

from minidl.serialization import process_alive, remove_stale_temporaries

try:
    import fcntl
except ImportError:  # Windows: the PID in the lock file decides
    fcntl = None

RUN_FILES = ("config.json", "metrics.csv", "curves.png", "last.ckpt", "best.ckpt", "interrupted.ckpt")
LOCK_NAME = ".minidl-train.lock"


class RunFolderError(ValueError):
    """The output folder cannot be used: not creatable, not writable, in use, or holding another run."""


def claim_run_folder(out, resuming_here=False, overwrite=False, say=print):
    """Create and lock ``out`` for a run; returns the held :class:`RunLock`. Raises :class:`RunFolderError`."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise RunFolderError(f"--out {out} is a file, not a folder: choose another --out")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunFolderError(f"--out {out}: cannot create the folder ({err.strerror or err})") from None
    lock = RunLock(out, created)
    stale_owner = lock.acquire()
    try:
        if stale_owner:
            say(f"note: {out} was locked by PID {stale_owner}, which is gone (killed?); taking it over")
        removed = remove_stale_temporaries(out, RUN_FILES)
        if removed:
            say(f"note: removed {len(removed)} temporary file(s) left in {out} by a killed run: "
                f"{', '.join(p.name for p in removed)}")
        present = [name for name in RUN_FILES if (out / name).exists()]
        if present and not resuming_here:
            if not overwrite:
                raise RunFolderError(f"--out {out} already holds a run ({', '.join(present)}): resume it with "
                                     f"--resume {out}, choose another --out, or pass --overwrite to replace it")
            for name in present:
                (out / name).unlink()
            say(f"--overwrite: removed the earlier run's {', '.join(present)} from {out}")
    except BaseException:
        lock.release()
        raise
    return lock


class RunLock:
    """``folder/.minidl-train.lock``: the PID of the run that owns the folder, held with ``flock``."""

    def __init__(self, folder, created=False):
        self.path = Path(folder) / LOCK_NAME
        self.created = created  # the folder was made for this run: removed again if nothing was written
        self.fd = None

    def acquire(self):
        """Take the lock; returns the PID of a dead former owner (a stale lock), else None."""
        while True:
            try:
                fd = _open_lock_file(self.path)
            except OSError as err:
                raise RunFolderError(f"--out {self.path.parent} is not writable: cannot create {self.path} "
                                     f"({err.strerror or err})") from None
            owner = _read_owner(fd)
            if not _try_flock(fd) or (fcntl is None and owner not in (None, os.getpid()) and process_alive(owner)):
                os.close(fd)
                raise RunFolderError(f"--out {self.path.parent} is in use by another training run (PID {owner}, "
                                     f"lock file {self.path}): wait for it to finish, or choose another --out")
            try:
                same_file = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(fd)  # the previous owner removed the file between our open and our flock: start again
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(record) + "\n").encode())
        self.fd = fd
        return owner if owner not in (None, os.getpid()) else None

    def release(self):
        if self.fd is None:
            return
        try:
            self.path.unlink()  # while still holding the flock, so no one locks the unlinked file
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
        if self.created:
            try:
                self.path.parent.rmdir()  # only succeeds when empty: a run that stopped before writing
            except OSError:
                pass


def _open_lock_file(path):
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)


def _try_flock(fd):
    if fcntl is None:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _read_owner(fd):
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return int(json.loads(os.read(fd, 4096).decode() or "{}").get("pid"))
    except (ValueError, TypeError, AttributeError):
        return None


def find_checkpoint(folder):
    """The checkpoint to resume a run folder from: the newer of interrupted.ckpt and last.ckpt, or None."""
    candidates = [Path(folder) / name for name in ("interrupted.ckpt", "last.ckpt") if (Path(folder) / name).is_file()]
    return max(candidates, key=lambda path: path.stat().st_mtime_ns, default=None)
