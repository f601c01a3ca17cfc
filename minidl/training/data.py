"""The training command's data: a dataset by name, shaped for the model, in train and validation loaders.

    data = build_data("mnist", channels=1, input_size=32, batch_size=64, seed=0)
    data.train_loader, data.val_loader, data.num_classes, data.source

Shaping for the model: a dataset whose images are a little smaller than the model's input is padded
(MNIST's 28x28 digits become LeNet-5's 32x32, as in the paper), any other size is resized; grey images
are repeated over three channels for a colour model and colour images averaged for a grey one.
Augmentation is the usual one per dataset: CIFAR-10 gets random 4-pixel-padded crops and horizontal
flips (He et al. 2016), image folders random crops of a 256/224 resize and flips, MNIST random shifts
of up to 2 pixels (translations are among the LeNet-5 paper's "distortions", Sec. III-C.7; on the
4,000-digit sample they lift LeNet-5 from ~96% to ~97.5%), Fashion-MNIST none (as its usual baselines),
the synthetic gratings none (a flip would change a grating's orientation, which is its class).

The validation set is the dataset's test split (an image folder's ``val/`` or ``test/``; without one, a
fixed 10% of its images).
"""
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from minidl.data import DataLoader, Subset, get_dataset, list_datasets
from minidl.data import transforms as T
from minidl.data.download import offline
from minidl.data.mnist import MNIST, SAMPLE_DESCRIPTION

NATIVE_SIZE = {"mnist": 28, "mnist-sample": 28, "fashion-mnist": 28, "cifar10": 32}
SYNTHETIC_SIZES = (2000, 500)  # train, validation images of --dataset synthetic
NETWORK_PROBE_SECONDS = 3.0
HEADER_CHECK_LIMIT = 100_000  # image folders up to this size get every header opened before training


class DataError(ValueError):
    """The data cannot be had as asked (unknown dataset, missing directory, no download): a usage error."""


@dataclass
class TrainingData:
    train_loader: DataLoader
    val_loader: DataLoader
    num_classes: int
    image_shape: tuple   # (C, H, W) the model sees
    source: str          # where the images came from (e.g. "mnist sample ...: full MNIST unreachable")
    train_size: int
    val_size: int
    dataset: str = ""    # the dataset actually read: "mnist-sample" when MNIST fell back to the sample


class MatchChannels:
    """Repeat a grey channel ``channels`` times, or average colour channels into one (NCHW batches)."""

    batched = True

    def __init__(self, channels):
        self.channels = channels

    def __call__(self, x):
        have = x.shape[-3]
        if have == self.channels:
            return x
        if have == 1:
            return np.repeat(x, self.channels, axis=-3)
        if self.channels == 1:
            return x.mean(axis=-3, keepdims=True)
        raise ValueError(f"MatchChannels: cannot turn {have}-channel images into {self.channels} channels")

    def __repr__(self):
        return f"MatchChannels({self.channels})"


def dataset_key(name):
    """The registry's name for ``name`` ("CIFAR-10" -> "cifar10"); DataError for an unknown one."""
    key = name.lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "image-folder": "imagefolder"}.get(key, key)
    if key not in list_datasets():
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}")
    return key


def build_data(dataset, channels, input_size, batch_size, seed, data_dir=None, limit=None, num_workers=0,
               num_classes=None, sample_fallback=True, comm=None):
    """Train and validation loaders for ``dataset`` shaped as ``channels`` x ``input_size``^2 images,
    normalised per channel to mean 0 and std 1 over the training set.

    ``sample_fallback``: MNIST may switch to the shipped sample (saying so) when the full set cannot be
    had; the training command allows it only when the user named neither the dataset nor a --data-dir.
    A data file that cannot be read is a :class:`DataError` naming it; no file is ever deleted.

    ``comm`` (a ``minidl.distributed`` communicator): data-parallel training; ``batch_size`` is the global
    batch, each rank loads ``batch_size // comm.size`` images of its shard of every epoch's permutation
    (``DistributedSampler``); the validation loader still holds the whole validation set on every rank."""
    key = dataset_key(dataset)
    if data_dir is not None and not Path(data_dir).expanduser().is_dir():
        raise DataError(f"--data-dir {data_dir} does not exist (or is not a directory)")
    if key == "imagefolder":
        train_set, val_set = _image_folders(data_dir, channels, input_size, seed)
    elif key == "synthetic":
        sizes = [n if limit is None else min(n, limit) for n in SYNTHETIC_SIZES]
        options = dict(image_shape=(channels, input_size, input_size), num_classes=num_classes or 10, seed=0)
        train_set = get_dataset(key, train=True, num_samples=sizes[0], **options)
        val_set = get_dataset(key, train=False, num_samples=sizes[1], **options)
    else:
        if key == "mnist" and data_dir is None and _mnist_unreachable(announce=sample_fallback):
            if not sample_fallback:
                raise DataError(f"mnist: full MNIST unreachable (no answer within {NETWORK_PROBE_SECONDS:g} s) "
                                f"and no local copy; use --dataset mnist-sample for the 5,000 digits shipped with "
                                f"minidl, or give the IDX files with --data-dir DIR")
            key = "mnist-sample"
        options = {"sample_fallback": sample_fallback} if key == "mnist" else {}
        train_set = _load(key, data_dir, train=True, **options)
        val_set = _load(key, data_dir, train=False, **options)
        if getattr(train_set, "is_sample", False) or getattr(val_set, "is_sample", False):
            key = "mnist-sample"
    source = getattr(train_set, "source", None) or str(getattr(train_set, "root", key))
    if key == "mnist-sample" and dataset_key(dataset) == "mnist":
        source = f"{SAMPLE_DESCRIPTION}: full MNIST unreachable (no answer within {NETWORK_PROBE_SECONDS:g} s)"
    mean, std, classes = train_set.mean, train_set.std, len(train_set.classes)
    if limit is not None:
        train_set, val_set = _first_of_shuffled(train_set, limit, seed), _first_of_shuffled(val_set, limit, seed + 1)

    spatial = _spatial(key, input_size)
    augment = {"cifar10": [T.RandomCrop(input_size, padding=4), T.RandomHorizontalFlip()],
               "imagefolder": [T.RandomHorizontalFlip()],  # (+ a random crop per image, above)
               "mnist": [T.RandomCrop(input_size, padding=2)],
               "mnist-sample": [T.RandomCrop(input_size, padding=2)]}.get(key, [])
    shape_for_model = [T.Normalize(mean, std), MatchChannels(channels)]
    train_transform = T.Compose(spatial + augment + shape_for_model)
    val_transform = T.Compose(spatial + shape_for_model)
    if comm is None:
        train_loader = DataLoader(train_set, batch_size, shuffle=True, transform=train_transform, seed=seed,
                                  num_workers=num_workers)
    else:
        from minidl.distributed import DistributedSampler
        train_loader = DataLoader(train_set, batch_size // comm.size, transform=train_transform, seed=seed,
                                  num_workers=num_workers, sampler=DistributedSampler(train_set, comm, seed=seed))
    val_loader = DataLoader(val_set, batch_size, shuffle=False, transform=val_transform, seed=seed,
                            num_workers=num_workers)
    return TrainingData(train_loader, val_loader, classes, (channels, input_size, input_size), source,
                        len(train_set), len(val_set), key)


def _load(key, data_dir, train, **options):
    try:
        return get_dataset(key, root=data_dir, train=train, **options)
    except (FileNotFoundError, RuntimeError) as err:  # no local copy and no download
        hint = "" if "--dataset" in str(err) else " (give the files with --data-dir DIR, or use --dataset synthetic " \
                                                  "for a smoke run)"
        raise DataError(f"{key}: {err}{hint}") from None
    except (ValueError, OSError) as err:  # a file that is there but cannot be read: its reader names it
        raise DataError(f"{key}: {err}") from None


def _spatial(key, size):
    """Pad a slightly smaller image (28 -> 32: the LeNet-5 paper's padding), else resize to ``size``."""
    native = NATIVE_SIZE.get(key)
    if native is None or native == size:
        return []
    if 0 < size - native <= 8 and (size - native) % 2 == 0:
        return [T.Pad((size - native) // 2)]
    return [T.Resize((size, size))]


def _image_folders(data_dir, channels, size, seed):
    if data_dir is None:
        raise DataError("dataset imagefolder needs --data-dir DIR (one sub-directory per class, or train/ and val/ "
                        "holding them); for a smoke run without data use --dataset synthetic")
    mode = "L" if channels == 1 else "RGB"
    resize = round(size * 256 / 224)  # AlexNet's and ResNet's 224 crops of 256 images
    train_transform = T.Compose([T.Resize(resize), T.RandomCrop(size)])
    val_transform = T.Compose([T.Resize(resize), T.CenterCrop(size)])
    root = Path(data_dir).expanduser()
    try:
        if (root / "train").is_dir():
            splits = (get_dataset("imagefolder", root=root, train=True, transform=train_transform, mode=mode),
                      get_dataset("imagefolder", root=root, train=False, transform=val_transform, mode=mode))
            for split in splits:
                _check_headers(split)
            return splits
        train_all = get_dataset("imagefolder", root=root, transform=train_transform, mode=mode)
        val_all = get_dataset("imagefolder", root=root, transform=val_transform, mode=mode)
    except (FileNotFoundError, ImportError) as err:
        raise DataError(str(err)) from None
    _check_headers(train_all)
    order = np.random.default_rng(seed).permutation(len(train_all))
    n_val = max(1, len(order) // 10)
    return Subset(train_all, np.sort(order[n_val:])), Subset(val_all, np.sort(order[:n_val]))


def _check_headers(folder):
    """Every image's header, before training, when there are at most HEADER_CHECK_LIMIT (a few seconds)."""
    if len(folder) <= HEADER_CHECK_LIMIT:
        try:
            folder.check_files()
        except ValueError as err:
            raise DataError(str(err)) from None


def _first_of_shuffled(dataset, limit, seed):
    """At most ``limit`` items, drawn at random (a class-sorted file would otherwise give one class)."""
    if len(dataset) <= limit:
        return dataset
    return Subset(dataset, np.sort(np.random.default_rng(seed).permutation(len(dataset))[:limit]))


def _mnist_unreachable(announce=True):
    """True when MNIST has no local copy and its first mirror does not answer within a few seconds.

    The dataset itself falls back to the shipped sample when the download fails, but a network that
    drops packets (rather than refusing them) would make every mirror wait out its full timeout.
    A refused connection or an unknown host is left to the dataset, which says why in one line.
    """
    if offline():
        return False  # the dataset goes straight to the sample and says so
    try:
        MNIST(train=True, download=False)
        return False  # a full local copy
    except (FileNotFoundError, ValueError):
        pass
    host = urllib.parse.urlsplit(MNIST.mirrors[0]).hostname
    try:
        socket.create_connection((host, 443), timeout=NETWORK_PROBE_SECONDS).close()
    except socket.timeout:
        if announce:
            print(f"minidl.data: using the {SAMPLE_DESCRIPTION}: full MNIST unreachable (no answer from {host} "
                  f"within {NETWORK_PROBE_SECONDS:g} s)", flush=True)
        return True
    except OSError:
        return False
    return False

