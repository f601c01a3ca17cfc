"""SyntheticImages: a labelled image set made on the spot, for smoke runs with no data at all.

Class k is a sine grating with its own orientation (k * 180 / K degrees), spatial frequency and colour;
each image gets a random phase, contrast and pixel noise. A small CNN separates the classes within an
epoch or two, a model that learns nothing stays at chance, so a training run can be checked end to end.
The same ``seed`` gives the same classes in both splits; train and test images differ.
"""
import numpy as np

from minidl.data.dataset import ArrayDataset


class SyntheticImages(ArrayDataset):
    """``num_samples`` uint8 images of ``image_shape`` (C, H, W), ``num_classes`` balanced classes."""

    def __init__(self, num_samples=1000, image_shape=(3, 32, 32), num_classes=10, seed=0, train=True,
                 transform=None, noise=0.2):
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"SyntheticImages: image_shape must be (C, H, W), got {image_shape}")
        if num_classes < 2 or num_samples < 0:
            raise ValueError(f"SyntheticImages: need num_classes >= 2 and num_samples >= 0, "
                             f"got {num_classes}, {num_samples}")
        C, H, W = image_shape
        K = num_classes
        classes_rng = np.random.default_rng([seed, 0])  # the class patterns: shared by train and test
        angles = np.pi * np.arange(K) / K
        frequencies = classes_rng.uniform(1.5, 4.0, K)  # cycles across the image
        colours = classes_rng.uniform(0.4, 1.0, (K, C)).astype(np.float32)
        y, x = np.mgrid[0:H, 0:W].astype(np.float32)
        y, x = y / max(H, W), x / max(H, W)
        waves = (2 * np.pi * frequencies[:, None, None] * (np.cos(angles)[:, None, None] * x
                                                           + np.sin(angles)[:, None, None] * y)).astype(np.float32)

        rng = np.random.default_rng([seed, 1 if train else 2])
        labels = rng.permutation(np.arange(num_samples) % K)
        phases = rng.uniform(0, 2 * np.pi, num_samples).astype(np.float32)
        contrasts = rng.uniform(0.5, 1.0, num_samples).astype(np.float32)
        images = np.empty((num_samples, C, H, W), dtype=np.uint8)
        for start in range(0, num_samples, 512):  # in chunks: float32 intermediates of big images add up
            part = slice(start, start + 512)
            k = labels[part]
            grating = np.sin(waves[k] + phases[part, None, None])  # n, H, W
            pixels = 0.5 + 0.5 * contrasts[part, None, None, None] * colours[k][:, :, None, None] * grating[:, None]
            pixels += noise * rng.standard_normal(pixels.shape, dtype=np.float32)
            images[part] = np.clip(np.rint(pixels * 255), 0, 255).astype(np.uint8)
        self.seed, self.train = seed, train
        self.source = f"synthetic gratings (seed {seed}, {'train' if train else 'test'})"
        super().__init__(images, labels, transform, classes=[f"class_{k}" for k in range(K)])

    def __repr__(self):
        return (f"SyntheticImages({len(self)} images of {tuple(self.images.shape[1:])}, "
                f"{self.num_classes} classes, seed={self.seed}, train={self.train})")
