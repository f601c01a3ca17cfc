"""Datasets: anything with ``len(ds)`` and ``ds[i] -> (float32 CHW image, int label)``.

Array-backed datasets (:class:`ArrayDataset` and the datasets built on it) also have
``get_batch(indices)``, which gathers a whole batch with one fancy-indexing call; the DataLoader uses it
instead of a per-item loop. Every dataset describes itself for the training CLI: ``classes``,
``num_classes``, ``image_shape`` (C, H, W, after ``transform``) and ``mean``/``std`` per channel (the
stats to normalize with).
"""
import numpy as np

from minidl import random as _random
from minidl.data.transforms import apply_to_batch, augmentation_rng


class Dataset:
    """Base class. Subclasses define ``__len__`` and ``__getitem__``; ``transform`` maps a CHW image."""

    classes = ()
    mean = None
    std = None
    transform = None

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must define __getitem__")

    @property
    def num_classes(self):
        return len(self.classes)

    @property
    def image_shape(self):
        """(C, H, W) of the images this dataset returns (after its transform)."""
        # a throwaway generator, so asking for the shape draws nothing from minidl's global one
        with augmentation_rng(np.random.default_rng(0)):
            return tuple(self[0][0].shape)


def _as_float32(images):
    """uint8 pixels -> float32 in [0, 1]; float images keep their values."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) * np.float32(1 / 255)
    return images.astype(np.float32, copy=False)


class ArrayDataset(Dataset):
    """Images and labels held in arrays (like ``torch.utils.data.TensorDataset``).

    ``images``: (N, C, H, W) or (N, H, W), uint8 (scaled to [0, 1] when read) or float. ``labels``: (N,)
    ints. Images stay in their stored dtype, so 60,000 MNIST digits take 47 MB, not 188 MB.

    >>> ds = ArrayDataset(np.zeros((10, 1, 28, 28), np.uint8), np.arange(10) % 2)
    >>> image, label = ds[3]; image.shape, image.dtype, label
    ((1, 28, 28), dtype('float32'), 1)
    """

    def __init__(self, images, labels, transform=None, classes=None, mean=None, std=None):
        images, labels = np.asarray(images), np.asarray(labels)
        if images.ndim == 3:
            images = images[:, None]
        if images.ndim != 4:
            raise ValueError(f"ArrayDataset: images must be (N, C, H, W) or (N, H, W), got shape {images.shape}")
        if images.dtype != np.uint8 and images.dtype.kind != "f":
            raise ValueError(f"ArrayDataset: images must be uint8 or float, got {images.dtype}")
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"ArrayDataset: labels must be a 1-D integer array, got {labels.dtype} {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(f"ArrayDataset: {len(images)} images but {len(labels)} labels")
        self.images, self.labels, self.transform = images, labels, transform
        if classes is not None:
            self.classes = tuple(classes)
        elif not type(self).classes:
            self.classes = tuple(str(k) for k in range(int(labels.max()) + 1 if len(labels) else 0))
        self._stats = (tuple(mean), tuple(std)) if mean is not None else self.default_stats

    default_stats = None  # (mean, std) of a known dataset; else they are measured on first use

    @property
    def mean(self):
        if self._stats is None:
            self._stats = self._channel_stats()
        return self._stats[0]

    @property
    def std(self):
        if self._stats is None:
            self._stats = self._channel_stats()
        return self._stats[1]

    def _channel_stats(self, max_images=10000, chunk=500):
        """Per-channel mean and std of the stored pixels (in [0, 1] for uint8), over at most 10,000 images."""
        sample = self.images[::max(1, len(self.images) // max_images)]
        sums, squares = np.zeros(sample.shape[1]), np.zeros(sample.shape[1])
        for start in range(0, len(sample), chunk):  # in chunks: float64 copies of 10,000 images are big
            block = _as_float32(sample[start:start + chunk]).astype(np.float64)
            sums += block.sum(axis=(0, 2, 3))
            squares += (block ** 2).sum(axis=(0, 2, 3))
        count = max(1, len(sample) * sample.shape[2] * sample.shape[3])
        mean = sums / count
        std = np.sqrt(np.maximum(squares / count - mean ** 2, 0))
        return tuple(float(m) for m in mean), tuple(float(s) for s in std)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = _as_float32(self.images[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def get_batch(self, indices):
        """Images (N, C, H, W) float32 and labels (N,) int64 for ``indices``, gathered in one go."""
        images = _as_float32(self.images[indices])
        if self.transform is not None:
            images = apply_to_batch(self.transform, images)
        return images, self.labels[indices].astype(np.int64)

    @property
    def image_shape(self):
        if self.transform is None:
            return tuple(self.images.shape[1:])
        return super().image_shape


class Subset(Dataset):
    """The items of ``dataset`` at ``indices``, in that order."""

    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        if self.indices.ndim != 1:
            raise ValueError(f"Subset: indices must be 1-D, got shape {self.indices.shape}")
        if len(self.indices) and (self.indices.min() < -len(dataset) or self.indices.max() >= len(dataset)):
            raise IndexError(f"Subset: indices out of range for a dataset of {len(dataset)} items")
        if hasattr(dataset, "get_batch"):
            self.get_batch = self._get_batch

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index):
        return self.dataset[int(self.indices[index])]

    def _get_batch(self, indices):
        return self.dataset.get_batch(self.indices[indices])

    classes = property(lambda self: self.dataset.classes)
    mean = property(lambda self: self.dataset.mean)
    std = property(lambda self: self.dataset.std)
    image_shape = property(lambda self: self.dataset.image_shape)


def random_split(dataset, lengths, seed=None):
    """Split ``dataset`` into non-overlapping :class:`Subset` s of the given lengths, at random.

    ``lengths``: counts summing to ``len(dataset)``, or fractions summing to 1 (leftover items go to the
    first splits, one each, as in PyTorch). ``seed``: the split's own generator; None draws the seed from
    minidl's global generator.

    >>> train, val = random_split(ds, [0.9, 0.1], seed=0)
    """
    n = len(dataset)
    lengths = list(lengths)
    if lengths and all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1) < 1e-6:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(not isinstance(x, (int, np.integer)) or x < 0 for x in lengths) or sum(lengths) != n:
        raise ValueError(f"random_split: lengths {lengths} must be non-negative ints summing to the dataset "
                         f"size {n}, or fractions summing to 1")
    if seed is None:
        seed = int(_random.default_rng().integers(2**63 - 1))
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + lengths)
    return [Subset(dataset, order[start:stop]) for start, stop in zip(bounds[:-1], bounds[1:])]
