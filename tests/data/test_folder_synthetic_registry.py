import numpy as np
import pytest

from minidl.data import (CIFAR10, MNIST, DataLoader, FashionMNIST, ImageFolder, SyntheticImages, get_dataset,
                         list_datasets)
from minidl.data.transforms import CenterCrop, Compose, Resize


def make_folder(root, sizes=((5, 7), (5, 7), (5, 7))):
    """root/<class>/<n>.png with known colours: class 'b_red' is red, 'a_blue' blue."""
    Image = pytest.importorskip("PIL.Image")
    for name, colour in [("b_red", (255, 0, 0)), ("a_blue", (0, 0, 255))]:
        (root / name).mkdir(parents=True)
        for i, (h, w) in enumerate(sizes):
            Image.new("RGB", (w, h), colour).save(root / name / f"{i}.png")
    (root / "a_blue" / "notes.txt").write_text("not an image")
    return root


def test_image_folder_classes_labels_and_pixels(tmp_path):
    ds = ImageFolder(make_folder(tmp_path / "imgs"))
    assert ds.classes == ("a_blue", "b_red") and len(ds) == 6
    image, label = ds[0]
    assert label == 0 and image.shape == (3, 5, 7) and image.dtype == np.float32
    np.testing.assert_allclose(image[:, 2, 3], [0, 0, 1])
    assert ds[5][1] == 1 and np.allclose(ds[5][0][:, 0, 0], [1, 0, 0])
    grey = ImageFolder(tmp_path / "imgs", mode="L")
    assert grey[0][0].shape == (1, 5, 7) and len(grey.mean) == 1
    images, labels = next(iter(DataLoader(ds, batch_size=6)))
    assert images.shape == (6, 3, 5, 7) and labels.numpy().tolist() == [0, 0, 0, 1, 1, 1]


def test_image_folder_of_mixed_sizes_needs_a_transform(tmp_path):
    root = make_folder(tmp_path / "imgs", sizes=((5, 7), (9, 4)))
    with pytest.raises(ValueError, match="Resize/CenterCrop"):
        next(iter(DataLoader(ImageFolder(root), batch_size=4)))
    ds = ImageFolder(root, transform=Compose([Resize(4), CenterCrop(4)]))
    assert next(iter(DataLoader(ds, batch_size=4)))[0].shape == (4, 3, 4, 4)
    assert ds.image_shape == (3, 4, 4)


def test_image_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-directories"):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "empty" / "cats").mkdir()
    with pytest.raises(FileNotFoundError, match="no image files"):
        ImageFolder(tmp_path / "empty")


def test_image_folder_names_an_unreadable_file(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "a_blue" / "0.png").write_bytes(b"broken")
    with pytest.raises(ValueError, match="0.png"):
        ImageFolder(root)[0]


def test_synthetic_is_deterministic_balanced_and_split():
    a = SyntheticImages(60, (1, 12, 12), num_classes=3, seed=4)
    b = SyntheticImages(60, (1, 12, 12), num_classes=3, seed=4)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert np.bincount(a.labels).tolist() == [20, 20, 20]
    assert not np.array_equal(SyntheticImages(60, (1, 12, 12), 3, seed=5).images, a.images)
    assert not np.array_equal(SyntheticImages(60, (1, 12, 12), 3, seed=4, train=False).images, a.images)
    assert a.image_shape == (1, 12, 12) and a.num_classes == 3 and a[0][0].dtype == np.float32


def test_synthetic_classes_are_learnable():
    """Phase-free features (the Fourier magnitude) separate the classes: nearest class mean, train -> test."""
    def features(ds):
        return np.abs(np.fft.fft2(ds.images[:, 0].astype(np.float64) - 128)).reshape(len(ds), -1)

    train = SyntheticImages(300, (1, 16, 16), num_classes=5, seed=0)
    test = SyntheticImages(100, (1, 16, 16), num_classes=5, seed=0, train=False)
    centroids = np.stack([features(train)[train.labels == k].mean(axis=0) for k in range(5)])
    predictions = np.argmin(((features(test)[:, None] - centroids) ** 2).sum(-1), axis=1)
    assert (predictions == test.labels).mean() > 0.9


def test_registry_names_and_errors(tmp_path):
    assert list_datasets() == ["cifar10", "fashion-mnist", "imagefolder", "mnist", "mnist-sample", "synthetic"]
    with pytest.raises(ValueError, match="choose one of: cifar10, fashion-mnist, imagefolder"):
        get_dataset("imagenet-22k")
    with pytest.raises(ValueError, match="root="):
        get_dataset("imagefolder")


def test_registry_builds_each_kind(tmp_path, monkeypatch):
    synthetic = get_dataset("synthetic", train=False, num_samples=10, image_shape=(3, 8, 8), num_classes=2)
    assert isinstance(synthetic, SyntheticImages) and len(synthetic) == 10
    sample = get_dataset("mnist-sample", train=False)
    assert isinstance(sample, MNIST) and sample.is_sample and len(sample) == 1000
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    assert get_dataset("MNIST").is_sample
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    with pytest.raises(FileNotFoundError):
        get_dataset("fashion_mnist", root=tmp_path, download=False)
    with pytest.raises(FileNotFoundError):
        get_dataset("CIFAR-10", root=tmp_path / "x", download=False)
    assert CIFAR10.name == "cifar10"


def test_registry_image_folder_picks_the_split(tmp_path):
    make_folder(tmp_path / "data" / "train")
    make_folder(tmp_path / "data" / "val", sizes=((3, 3),))
    assert len(get_dataset("imagefolder", root=tmp_path / "data", train=True)) == 6
    assert len(get_dataset("imagefolder", root=tmp_path / "data", train=False)) == 2
