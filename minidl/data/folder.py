"""ImageFolder: one sub-directory per class, image files inside (read with Pillow).

    root/cat/001.png, root/cat/002.jpg, root/dog/abc.png  ->  classes ("cat", "dog"), labels 0, 1

Class names are sorted, so labels do not depend on the order the file system lists them in. Images are
read when indexed and converted to float32 CHW in [0, 1]; give a ``transform`` (e.g. Resize + CenterCrop)
when their sizes differ, since a batch needs one shape.
"""
from pathlib import Path

from minidl.data.dataset import Dataset
from minidl.data.formats import DataFileError, read_image
from minidl.data.transforms import ToFloat

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolder(Dataset):
    """Images in ``root/<class name>/``. ``mode``: "RGB" (3 channels) or "L" (grey, 1 channel)."""

    default_stats = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # ImageNet's, the usual choice for photos

    def __init__(self, root, transform=None, mode="RGB", extensions=IMAGE_EXTENSIONS):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolder: data directory {self.root} does not exist")
        if mode not in ("RGB", "L"):
            raise ValueError(f"ImageFolder: mode must be 'RGB' or 'L', got {mode!r}")
        self.transform, self.mode = transform, mode
        self.classes = tuple(sorted(d.name for d in self.root.iterdir()
                                    if d.is_dir() and not d.name.startswith(".")))
        if not self.classes:
            raise FileNotFoundError(f"ImageFolder: {self.root} has no class sub-directories (expected root/<class>/<image>)")
        extensions = tuple(e.lower() for e in extensions)
        self.samples = [(path, label) for label, name in enumerate(self.classes)
                        for path in sorted((self.root / name).rglob("*"))
                        if path.is_file() and path.suffix.lower() in extensions]
        if not self.samples:
            raise FileNotFoundError(f"ImageFolder: no image files ({', '.join(extensions)}) under {self.root}")
        self.labels = [label for _, label in self.samples]
        self._to_float = ToFloat()

    @property
    def mean(self):
        mean = self.default_stats[0]
        return mean if self.mode == "RGB" else (sum(mean) / 3,)

    @property
    def std(self):
        std = self.default_stats[1]
        return std if self.mode == "RGB" else (sum(std) / 3,)

    def check_files(self):
        """Open every image's header (not its pixels: fast); :class:`DataFileError` naming the first bad one.

        Catches files that are not images at all or cut off inside the header; a file cut off inside its
        pixels is found only when it is decoded (the training command then saves and stops, see
        ``minidl.training.run``)."""
        try:
            from PIL import Image
        except ImportError:
            raise ImportError("reading image files needs Pillow: pip install 'minidl[images]'") from None
        for path, _ in self.samples:
            try:
                with Image.open(path):
                    pass
            except Exception as err:  # Pillow raises many kinds; name the file
                raise DataFileError(f"ImageFolder: cannot read {path}: {err}") from None

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        path, label = self.samples[index]
        try:
            image = self._to_float(read_image(path, self.mode))
        except ImportError:
            raise
        except Exception as err:  # Pillow raises many kinds; name the file
            raise DataFileError(f"ImageFolder: cannot read {path}: {err}") from err
        if self.transform is not None:
            image = self.transform(image)
        return image, label

    def __repr__(self):
        return f"ImageFolder({str(self.root)!r}, {len(self)} images, {self.num_classes} classes)"
