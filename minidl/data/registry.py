"""Datasets by name, for the training CLI: ``get_dataset("mnist", train=False)``."""
from pathlib import Path

from minidl.data.cifar import CIFAR10
from minidl.data.folder import ImageFolder
from minidl.data.mnist import MNIST, FashionMNIST
from minidl.data.synthetic import SyntheticImages


def _mnist(root, train, download, transform, sample=False, sample_fallback=True):
    return MNIST(root, train, download, transform, sample=sample, sample_fallback=sample_fallback)


def _mnist_sample(root, train, download, transform):
    return MNIST(root, train, download, transform, sample=True)


def _fashion_mnist(root, train, download, transform):
    return FashionMNIST(root, train, download, transform)


def _cifar10(root, train, download, transform):
    return CIFAR10(root, train, download, transform)


def _image_folder(root, train, download, transform, **options):
    """``root`` itself, or ``root/train`` and ``root/val`` (or ``root/test``) when it has them."""
    if root is None:
        raise ValueError("get_dataset('imagefolder'): pass root=, the directory of class sub-directories")
    root = Path(root).expanduser()
    if (root / "train").is_dir():
        splits = ("train",) if train else ("val", "test")
        split = next((root / s for s in splits if (root / s).is_dir()), None)
        if split is None:
            raise FileNotFoundError(f"get_dataset('imagefolder'): {root} has train/ but no val/ or test/")
        root = split
    return ImageFolder(root, transform, **options)


def _synthetic(root, train, download, transform, num_samples=None, image_shape=(3, 32, 32), num_classes=10,
               seed=0, **options):
    if num_samples is None:
        num_samples = 2000 if train else 500
    return SyntheticImages(num_samples, image_shape, num_classes, seed, train, transform, **options)


_BUILDERS = {
    "mnist": _mnist,
    "mnist-sample": _mnist_sample,
    "fashion-mnist": _fashion_mnist,
    "cifar10": _cifar10,
    "imagefolder": _image_folder,
    "synthetic": _synthetic,
}
_ALIASES = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "image-folder": "imagefolder"}


def list_datasets():
    """The names :func:`get_dataset` knows."""
    return sorted(_BUILDERS)


def get_dataset(name, root=None, train=True, download=True, transform=None, **options):
    """Build dataset ``name`` (see :func:`list_datasets`); ``options`` go to its class
    (e.g. ``num_samples``, ``image_shape``, ``num_classes``, ``seed`` for "synthetic")."""
    key = name.lower().replace("_", "-")
    key = _ALIASES.get(key, key)
    if key not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(list_datasets())}")
    return _BUILDERS[key](root, train, download, transform, **options)
