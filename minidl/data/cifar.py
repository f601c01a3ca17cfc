"""CIFAR-10, from the python version: ``cifar-10-python.tar.gz`` holding ``cifar-10-batches-py/``.

The archive (verified against its published SHA-256) is unpacked once into ``root``; later runs read the
pickled batches directly: ``data_batch_1`` .. ``data_batch_5`` (10,000 images each) for training,
``test_batch`` for testing.
"""
import logging
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np

from minidl.data import download as _download
from minidl.data.dataset import ArrayDataset
from minidl.data.formats import read_cifar_batch

logger = logging.getLogger("minidl.data")


class CIFAR10(ArrayDataset):
    """CIFAR-10: 50,000 train / 10,000 test colour images, 3 x 32 x 32, 10 classes."""

    name = "cifar10"
    archive = "cifar-10-python.tar.gz"
    folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    train_batches = tuple(f"data_batch_{i}" for i in range(1, 6))
    test_batches = ("test_batch",)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    # per-channel mean and std over all training pixels (not the often-quoted 0.2023, 0.1994, 0.2010,
    # which average per-image stds)
    default_stats = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))

    def __init__(self, root=None, train=True, download=True, transform=None):
        self.root = Path(root).expanduser() if root is not None else _download.cache_dir() / self.name
        self.train = train
        folder = self._prepare(download)
        parts = [read_cifar_batch(folder / name) for name in (self.train_batches if train else self.test_batches)]
        images = np.concatenate([images for images, _ in parts])
        labels = np.concatenate([labels for _, labels in parts])
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(f"{folder}: labels outside 0..{len(self.classes) - 1}")
        self.source = f"{type(self).__name__} from {folder}"
        super().__init__(images, labels, transform)

    def _prepare(self, download):
        """The unpacked batch folder, unpacking (and first downloading) the archive when needed."""
        folder = self.root / self.folder
        needed = self.train_batches + self.test_batches
        if all((folder / name).is_file() for name in needed):
            return folder
        archive = self.root / self.archive
        incomplete = [name for name in needed if not (folder / name).is_file()]
        if folder.exists():  # never replaced: it may be the user's own
            raise ValueError(f"CIFAR10: {folder} lacks {', '.join(incomplete)}; minidl leaves the folder as it is: "
                             f"complete it, or move it away to unpack {self.archive} afresh")
        if not archive.exists() and not download:
            if not self.root.exists():
                raise FileNotFoundError(f"CIFAR10: data directory {self.root} does not exist; "
                                        f"pass download=True to fetch the data")
            raise FileNotFoundError(f"CIFAR10: {self.root} has neither {self.folder}/ (complete) nor "
                                    f"{self.archive}; pass download=True to fetch it")
        if _download.offline() and not archive.exists():
            raise RuntimeError(f"CIFAR10: {archive} is missing and MINIDL_OFFLINE is set")
        checksum = _download.CHECKSUMS[f"{self.name}/{self.archive}"]
        try:
            _download.ensure_file(archive, checksum, [self.url], download=download and not _download.offline())
        except _download.ForeignFileError:
            logger.warning("minidl.data: note: %s differs from the official CIFAR-10 archive (SHA-256); "
                           "reading it as given", archive)
        self._unpack(archive, folder)
        missing = [name for name in needed if not (folder / name).is_file()]
        if missing:
            raise ValueError(f"{archive}: has no {', '.join(missing)} under {self.folder}/")
        return folder

    def _unpack(self, archive, folder):
        """Extract the batch folder into a temporary directory, then move it into place."""
        staging = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers() if m.isfile() and Path(m.name).parent.name == self.folder]
                for member in members:  # flat copy of the regular files only: no links, no paths outside
                    target = staging / Path(member.name).name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
            os.replace(staging, folder)
        except (tarfile.TarError, EOFError, OSError) as err:
            raise ValueError(f"{archive}: cannot unpack ({err})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def __repr__(self):
        return f"CIFAR10(train={self.train}, {len(self)} images, source={self.source!r})"
