"""minidl.data: datasets, transforms and a resumable, prefetching DataLoader.

    from minidl.data import DataLoader, get_dataset, transforms as T
    train = get_dataset("mnist", train=True)          # full MNIST, or the shipped 5,000-digit sample
    loader = DataLoader(train, batch_size=64, shuffle=True, seed=0,
                        transform=T.Normalize(train.mean, train.std))
    for images, labels in loader:                     # Tensor N x 1 x 28 x 28 float32, Tensor N int64
        ...

Files are cached under ``$MINIDL_DATA`` (default ``~/.cache/minidl/data``) and checked against their
published SHA-256 (``minidl.data.download.CHECKSUMS``).
"""
from minidl.data import transforms
from minidl.data.cifar import CIFAR10
from minidl.data.dataloader import DataLoader
from minidl.data.dataset import ArrayDataset, Dataset, Subset, random_split
from minidl.data.download import DownloadError, cache_dir
from minidl.data.folder import ImageFolder
from minidl.data.mnist import MNIST, FashionMNIST, load_mnist_sample
from minidl.data.registry import get_dataset, list_datasets
from minidl.data.synthetic import SyntheticImages
from minidl.data.transforms import (CenterCrop, Compose, Normalize, Pad, RandomCrop, RandomHorizontalFlip, Resize,
                                    ToFloat)

__all__ = [
    "ArrayDataset", "CIFAR10", "CenterCrop", "Compose", "DataLoader", "Dataset", "DownloadError", "FashionMNIST",
    "ImageFolder", "MNIST", "Normalize", "Pad", "RandomCrop", "RandomHorizontalFlip", "Resize", "Subset",
    "SyntheticImages", "ToFloat", "cache_dir", "get_dataset", "list_datasets", "load_mnist_sample", "random_split",
    "transforms",
]
