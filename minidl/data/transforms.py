"""Image transforms on float32 CHW arrays, and on NCHW batches where ``batched`` is True.

    train = Compose([RandomCrop(32, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])
    alexnet_train = Compose([Resize(256), RandomCrop(224)])    # "224 crops from 256" (no RandomResizedCrop)
    alexnet_eval = Compose([Resize(256), CenterCrop(224)])

Random transforms draw from their own generator when given a ``seed``, else from minidl's global one
(``minidl.manual_seed``). Inside :func:`augmentation_rng` (the DataLoader wraps every batch in it, with a
generator derived from its seed, the epoch and the batch index) they draw from that generator instead,
so a batch's augmentation does not depend on prefetching, thread timing, or where a run was resumed.
"""
import threading
from contextlib import contextmanager

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minidl import random as _random
from minidl.functions._checks import pair

_local = threading.local()


@contextmanager
def augmentation_rng(rng):
    """Make random transforms in this thread draw from ``rng`` while the block runs."""
    previous = getattr(_local, "rng", None)
    _local.rng = rng
    try:
        yield rng
    finally:
        _local.rng = previous


def apply_to_batch(transform, images):
    """Apply ``transform`` to an NCHW batch: in one call when it handles batches, else image by image."""
    if getattr(transform, "batched", False):
        return transform(images)
    return np.stack([transform(image) for image in images])


def _pair(size, name):
    """A positive int or (height, width): minidl's one pair parser (minidl.functions._checks.pair)."""
    return pair(size, name, "size", minimum=1)


def _check_image(x, name):
    if x.ndim not in (3, 4):
        raise ValueError(f"{name}: expected a CHW image or an NCHW batch, got shape {x.shape}")


class RandomTransform:
    """Base of the random transforms: where their random numbers come from (see the module docstring)."""

    batched = True

    def __init__(self, seed=None):
        self.seed = seed
        self.rng = None if seed is None else np.random.default_rng(seed)

    def generator(self):
        active = getattr(_local, "rng", None)
        if active is not None:
            return active
        return self.rng if self.rng is not None else _random.default_rng()


class Compose:
    """Apply transforms in order. Handles batches when every one of them does."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        self.batched = all(getattr(t, "batched", False) for t in self.transforms)

    def __call__(self, x):
        for transform in self.transforms:
            x = transform(x)
        return x

    def __repr__(self):
        lines = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{lines}\n])"


class ToFloat:
    """uint8 HW or HWC image (as Pillow gives) -> float32 CHW in [0, 1]; float input keeps its values."""

    batched = False

    def __call__(self, x):
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[:, :, None]
        if x.ndim != 3 or x.shape[2] not in (1, 3, 4):
            raise ValueError(f"ToFloat: expected an HW or HWC image with 1, 3 or 4 channels, got shape "
                             f"{x.shape} (already CHW? then leave ToFloat out)")
        chw = np.ascontiguousarray(x.transpose(2, 0, 1))
        if chw.dtype == np.uint8:
            return chw.astype(np.float32) * np.float32(1 / 255)
        return chw.astype(np.float32, copy=False)

    def __repr__(self):
        return "ToFloat()"


class Normalize:
    """Per channel: ``(x - mean[c]) / std[c]``."""

    batched = True

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)
        if self.mean.shape != self.std.shape:
            raise ValueError(f"Normalize: {len(self.mean)} means but {len(self.std)} stds")
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.ravel().tolist()}")

    def __call__(self, x):
        _check_image(x, "Normalize")
        if x.shape[-3] != len(self.mean):
            raise ValueError(f"Normalize: image has {x.shape[-3]} channels but mean/std have {len(self.mean)}")
        return ((x - self.mean) / self.std).astype(np.float32, copy=False)

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class Pad:
    """Pad the two spatial axes. ``padding``: int, (left/right, top/bottom) or (left, top, right, bottom).

    ``mode``: "constant" (with ``fill``), "edge", "reflect" or "symmetric", as in ``numpy.pad``.
    """

    batched = True
    MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, padding, fill=0.0, mode="constant"):
        if isinstance(padding, (int, np.integer)):
            padding = (padding,) * 4
        elif len(padding) == 2:
            padding = (padding[0], padding[1], padding[0], padding[1])
        if len(padding) != 4 or min(padding) < 0:
            raise ValueError(f"Pad: padding must be a non-negative int or a 2- or 4-tuple, got {padding}")
        if mode not in self.MODES:
            raise ValueError(f"Pad: mode must be one of {self.MODES}, got {mode!r}")
        self.padding, self.fill, self.mode = tuple(int(p) for p in padding), fill, mode

    def __call__(self, x):
        _check_image(x, "Pad")
        left, top, right, bottom = self.padding
        widths = [(0, 0)] * (x.ndim - 2) + [(top, bottom), (left, right)]
        if self.mode == "constant":
            return np.pad(x, widths, mode="constant", constant_values=self.fill)
        return np.pad(x, widths, mode=self.mode)

    def __repr__(self):
        return f"Pad(padding={self.padding}, fill={self.fill}, mode={self.mode!r})"


class RandomCrop(RandomTransform):
    """Pad by ``padding`` (see :class:`Pad`), then cut a ``size`` window at a random place.

    In a batch every image gets its own window.
    """

    def __init__(self, size, padding=0, fill=0.0, pad_mode="constant", seed=None):
        super().__init__(seed)
        self.size = _pair(size, "RandomCrop")
        self.pad = Pad(padding, fill, pad_mode) if padding else None

    def __call__(self, x):
        _check_image(x, "RandomCrop")
        if self.pad is not None:
            x = self.pad(x)
        (H, W), (h, w) = x.shape[-2:], self.size
        if h > H or w > W:
            raise ValueError(f"RandomCrop: crop {self.size} is larger than the (padded) image {(H, W)}")
        rng = self.generator()
        if x.ndim == 3:
            top, left = rng.integers(0, H - h + 1), rng.integers(0, W - w + 1)
            return np.ascontiguousarray(x[:, top:top + h, left:left + w])
        N = len(x)
        tops, lefts = rng.integers(0, H - h + 1, size=N), rng.integers(0, W - w + 1, size=N)
        windows = sliding_window_view(x, (h, w), axis=(2, 3))  # N, C, H-h+1, W-w+1, h, w (a view)
        return windows[np.arange(N), :, tops, lefts]  # N, C, h, w

    def __repr__(self):
        padding = self.pad.padding if self.pad else 0
        return f"RandomCrop(size={self.size}, padding={padding})"


class RandomHorizontalFlip(RandomTransform):
    """Mirror left-right with probability ``p`` (per image in a batch)."""

    def __init__(self, p=0.5, seed=None):
        super().__init__(seed)
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p

    def __call__(self, x):
        _check_image(x, "RandomHorizontalFlip")
        rng = self.generator()
        if x.ndim == 3:
            return np.ascontiguousarray(x[:, :, ::-1]) if rng.random() < self.p else x
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


def _bilinear_taps(in_size, out_size):
    """Source rows (or columns) i0, i1 and the weight of i1 for each output position.

    Pixel centres are aligned (``align_corners=False``): output i samples input (i + 0.5) * in/out - 0.5,
    clamped to the image, as PyTorch's ``interpolate(mode="bilinear")`` does.
    """
    src = (np.arange(out_size) + 0.5) * (in_size / out_size) - 0.5
    src = np.clip(src, 0, in_size - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, in_size - 1)
    return i0, i1, (src - i0).astype(np.float32)


def resize_bilinear(x, out_h, out_w):
    """Bilinear resize of the last two axes of ``x`` (CHW or NCHW) to (out_h, out_w); returns float32.

    Separable: interpolate between rows, then between columns. No antialiasing, so shrinking by more
    than 2x skips pixels (Pillow and torchvision's ``antialias=True`` would average them).
    """
    x = np.asarray(x, dtype=np.float32)
    r0, r1, wr = _bilinear_taps(x.shape[-2], out_h)
    c0, c1, wc = _bilinear_taps(x.shape[-1], out_w)
    top, bottom = np.take(x, r0, axis=-2), np.take(x, r1, axis=-2)  # np.take: faster than x[..., r0, :]
    rows = top + (bottom - top) * wr[:, None]
    left, right = np.take(rows, c0, axis=-1), np.take(rows, c1, axis=-1)
    return left + (right - left) * wc


class Resize:
    """Bilinear resize. ``size`` int: the shorter side becomes ``size``, keeping the aspect ratio
    (the longer side is truncated, as in torchvision); ``(h, w)``: exactly that size."""

    batched = True

    def __init__(self, size):
        self.size = size if isinstance(size, (int, np.integer)) else _pair(size, "Resize")
        if isinstance(self.size, (int, np.integer)) and self.size <= 0:
            raise ValueError(f"Resize: size must be positive, got {size}")

    def output_size(self, H, W):
        if not isinstance(self.size, (int, np.integer)):
            return self.size
        if H <= W:
            return int(self.size), int(self.size * W / H)
        return int(self.size * H / W), int(self.size)

    def __call__(self, x):
        _check_image(x, "Resize")
        out_h, out_w = self.output_size(*x.shape[-2:])
        if (out_h, out_w) == x.shape[-2:]:
            return x
        return resize_bilinear(x, out_h, out_w)

    def __repr__(self):
        return f"Resize(size={self.size})"


class CenterCrop:
    """Cut the central ``size`` window (offsets rounded as in torchvision)."""

    batched = True

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def __call__(self, x):
        _check_image(x, "CenterCrop")
        (H, W), (h, w) = x.shape[-2:], self.size
        if h > H or w > W:
            raise ValueError(f"CenterCrop: crop {self.size} is larger than the image {(H, W)}; Resize first")
        top, left = int(round((H - h) / 2)), int(round((W - w) / 2))
        return np.ascontiguousarray(x[..., top:top + h, left:left + w])

    def __repr__(self):
        return f"CenterCrop(size={self.size})"


def resized_crop(train, resize=256, crop=224):
    """AlexNet's "224 x 224 patches from 256 x 256 images": Resize then RandomCrop (train) or CenterCrop."""
    return Compose([Resize(resize), RandomCrop(crop) if train else CenterCrop(crop)])
