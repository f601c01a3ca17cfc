"""Small files in the real formats, and a fake URL opener that serves them."""
import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np

from minidl.data.download import Checksum


def write_idx(path, array):
    """Write ``array`` (uint8) as an IDX file, gzipped when ``path`` ends in .gz."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_cifar_batch(path, images, labels):
    """A CIFAR-10 python batch: a protocol-2 pickle of a dict with bytes keys, as the real files are."""
    batch = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(x) for x in labels],
             b"data": np.ascontiguousarray(images, dtype=np.uint8).reshape(len(images), -1),
             b"filenames": [f"img_{i}.png".encode() for i in range(len(images))]}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))
    return path


def cifar_arrays(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8), rng.integers(0, 10, n)


def make_cifar_tar(directory, per_batch=4):
    """``cifar-10-python.tar.gz`` with 5 train batches and a test batch of ``per_batch`` images each."""
    directory = Path(directory)
    folder = directory / "build" / "cifar-10-batches-py"
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(folder / name, *cifar_arrays(per_batch, seed=i))
    pickle_meta = {b"label_names": [b"airplane"], b"num_cases_per_batch": per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(pickle_meta, protocol=2))
    archive = directory / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    return archive


def checksum_of(data_or_path):
    data = Path(data_or_path).read_bytes() if isinstance(data_or_path, Path) else data_or_path
    return Checksum(hashlib.sha256(data).hexdigest(), None, len(data))


class FakeResponse(io.BytesIO):
    def __init__(self, body, content_length):
        super().__init__(body)
        self.headers = {} if content_length is None else {"Content-Length": str(content_length)}


class FakeOpener:
    """Answers each URL from a list of planned replies, in turn (the last one repeats).

    A reply is bytes, ``(bytes, content_length)`` for a short transfer, or an exception to raise.
    URLs without a plan are unreachable. ``calls`` records every request.
    """

    def __init__(self, plan):
        self.plan = {url: list(replies) for url, replies in plan.items()}
        self.calls = []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        replies = self.plan.get(url)
        if not replies:
            raise urllib.error.URLError("Name or service not known (fake)")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if isinstance(reply, Exception):
            raise reply
        body, length = reply if isinstance(reply, tuple) else (reply, len(reply))
        return FakeResponse(body, length)
