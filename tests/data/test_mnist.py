import logging
import os

import numpy as np
import pytest

from minidl.data import MNIST, FashionMNIST, load_mnist_sample
from minidl.data import download as dl
from minidl.data import mnist as mnist_module

from .fakes import FakeOpener, checksum_of, write_idx

MIRROR = "https://mirror.example/mnist/"


def digits(n, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n).astype(np.uint8)


def write_split(directory, train=True, n=12, suffix=".gz", seed=0):
    """Small IDX files with MNIST's names; returns their paths (images, labels)."""
    prefix = "train" if train else "t10k"
    images, labels = digits(n, seed)
    return (write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images),
            write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels))


def pin_checksums(monkeypatch, dataset, *paths):
    """Make ``paths`` the official files of ``dataset`` (stands in for the real checksum table)."""
    for path in paths:
        monkeypatch.setitem(dl.CHECKSUMS, f"{dataset}/{path.name}", checksum_of(path))


def test_sample_split_is_fixed_and_stratified():
    train_images, train_labels = load_mnist_sample(train=True)
    test_images, test_labels = load_mnist_sample(train=False)
    assert train_images.shape == (4000, 28, 28) and test_images.shape == (1000, 28, 28)
    assert train_images.dtype == np.uint8 and train_images.max() == 255 and train_images.min() == 0
    assert np.bincount(train_labels).tolist() == [400] * 10
    assert np.bincount(test_labels).tolist() == [100] * 10
    flat = {img.tobytes() for img in train_images}
    assert not any(img.tobytes() in flat for img in test_images)  # disjoint
    np.testing.assert_array_equal(load_mnist_sample(train=True)[0], train_images)  # same every time


def test_sample_as_a_dataset_gives_floats_in_0_1():
    ds = MNIST(sample=True, train=False)
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == np.float32
    assert 0 <= image.min() and image.max() <= 1 and image.max() > 0.9
    assert ds.is_sample and "4,000 train / 1,000 test" in ds.source
    assert ds.classes == tuple("0123456789") and ds.num_classes == 10 and ds.image_shape == (1, 28, 28)
    assert ds.mean == (0.1307,) and ds.std == (0.3081,)


@pytest.mark.parametrize("suffix", [".gz", ""])
def test_full_local_copy_is_used(tmp_path, monkeypatch, suffix):
    paths = write_split(tmp_path, train=False, suffix=suffix)
    pin_checksums(monkeypatch, "mnist", *paths)
    ds = MNIST(root=tmp_path, train=False, download=False)
    assert len(ds) == 12 and not ds.is_sample and str(tmp_path) in ds.source
    np.testing.assert_allclose(ds[3][0][0] * 255, digits(12)[0][3], atol=1e-4)


def test_download_through_the_mirrors_then_cached(tmp_path, monkeypatch):
    served = write_split(tmp_path / "server", train=True)
    pin_checksums(monkeypatch, "mnist", *served)
    opener = FakeOpener({MIRROR + p.name: [p.read_bytes()] for p in served})
    monkeypatch.setattr(dl, "urlopen", opener)
    monkeypatch.setattr(MNIST, "mirrors", ("https://down.example/mnist/", MIRROR))
    root = tmp_path / "cache"
    ds = MNIST(root=root, train=True)
    assert len(ds) == 12 and "downloaded" in ds.source
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == sorted(p.name for p in served)
    calls = len(opener.calls)
    MNIST(root=root, train=True)             # second time: from the cache, no requests
    assert len(opener.calls) == calls


def test_minidl_s_own_damaged_download_is_fetched_again(tmp_path, monkeypatch, caplog):
    served = write_split(tmp_path / "server", train=False)
    pin_checksums(monkeypatch, "mnist", *served)
    root = tmp_path / "cache"
    opener = FakeOpener({MIRROR + p.name: [p.read_bytes()] for p in served})
    monkeypatch.setattr(dl, "urlopen", opener)
    monkeypatch.setattr(MNIST, "mirrors", (MIRROR,))
    MNIST(root=root, train=False)                          # downloaded by minidl
    images = root / served[0].name
    images.write_bytes(images.read_bytes()[:100])          # then damaged (a truncated gzip)
    ds = MNIST(root=root, train=False)
    np.testing.assert_allclose(ds[0][0][0] * 255, digits(12, seed=0)[0][0], atol=1e-4)
    assert "minidl's own damaged download" in caplog.text
    assert images.read_bytes() == served[0].read_bytes()


def test_a_user_s_re_encoded_set_is_read_as_given_and_never_deleted(tmp_path, monkeypatch, caplog):
    """Valid IDX files that are not byte-identical to the release (a user's subset): read, with one note."""
    official = write_split(tmp_path / "server", train=False)
    pin_checksums(monkeypatch, "mnist", *official)
    root = tmp_path / "mine"
    mine = write_split(root, train=False, n=7, seed=3)
    before = {p: p.read_bytes() for p in mine}
    monkeypatch.setattr(mnist_module, "_announced", set())
    with caplog.at_level(logging.WARNING, logger="minidl.data"):
        ds = MNIST(root=root, train=False, download=False)
    assert len(ds) == 7 and not ds.is_sample and "not the official release" in ds.source
    np.testing.assert_allclose(ds[2][0][0] * 255, digits(7, seed=3)[0][2], atol=1e-4)
    notes = [r.getMessage() for r in caplog.records]
    assert len(notes) == 1 and "differ from the official MNIST release" in notes[0] and "\n" not in notes[0]
    assert {p: p.read_bytes() for p in root.iterdir()} == before


def test_a_user_s_broken_file_is_refused_by_name_and_kept(tmp_path, monkeypatch):
    official = write_split(tmp_path / "server", train=False)
    pin_checksums(monkeypatch, "mnist", *official)
    root = tmp_path / "mine"
    images, labels = write_split(root, train=False)
    images.write_bytes(images.read_bytes()[:60])  # a truncated gzip
    before = {p: p.read_bytes() for p in root.iterdir()}
    monkeypatch.setattr(dl, "urlopen", FakeOpener({}))
    with pytest.raises(ValueError, match=f"{images}: truncated or corrupt gzip"):
        MNIST(root=root, train=False)
    assert {p: p.read_bytes() for p in root.iterdir()} == before


def test_unreachable_full_set_falls_back_to_the_sample_with_one_line(tmp_path, monkeypatch, caplog):
    opener = FakeOpener({})
    monkeypatch.setattr(dl, "urlopen", opener)
    with caplog.at_level(logging.WARNING, logger="minidl.data"):
        train, test = MNIST(root=tmp_path / "none", train=True), MNIST(root=tmp_path / "none", train=False)
    assert (len(train), len(test)) == (4000, 1000) and train.is_sample and test.is_sample
    assert "full MNIST unreachable" in train.source and "Name or service not known" in train.source
    lines = [r.getMessage() for r in caplog.records if "mnist sample" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
    assert len(opener.calls) == len(MNIST.mirrors)  # gave up after the first file failed everywhere


def test_offline_setting_skips_the_network(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    ds = MNIST(root=tmp_path, train=True)     # the guard fixture would fail any request
    assert ds.is_sample and "MINIDL_OFFLINE" in ds.source


def test_missing_directory_without_download_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nowhere")):
        MNIST(root=tmp_path / "nowhere", download=False)


def test_bad_idx_file_is_a_value_error_naming_it(tmp_path):
    images, labels = write_split(tmp_path, train=True, suffix="")
    images.write_bytes(b"\x00\x00\x08\x07" + images.read_bytes()[4:])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: not an IDX file|train-images-idx3-ubyte: IDX"):
        MNIST(root=tmp_path, download=False)


def test_wrong_image_size_and_count_are_named(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte: expected uint8 images N x 28 x 28"):
        MNIST(root=tmp_path, train=False, download=False)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((3, 28, 28), np.uint8))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: expected 3 labels"):
        MNIST(root=tmp_path, train=False, download=False)


def test_fashion_mnist_has_no_sample_fallback(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNIST, "system_dirs", ())
    monkeypatch.setattr(dl, "urlopen", FakeOpener({}))
    with pytest.raises(RuntimeError, match="download failed"):
        FashionMNIST(root=tmp_path, train=False)


def test_fashion_mnist_reads_a_system_copy(tmp_path, monkeypatch):
    system = tmp_path / "usr-share"
    write_split(system, train=False, n=7)
    monkeypatch.setattr(FashionMNIST, "system_dirs", (str(system),))
    ds = FashionMNIST(root=tmp_path / "cache", train=False, download=False)
    assert len(ds) == 7 and str(system) in ds.source and ds.classes[9] == "Ankle boot"


DEBIAN = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(DEBIAN), reason="Debian package dataset-fashion-mnist is not installed")
def test_debian_fashion_mnist(tmp_path):
    ds = FashionMNIST(root=tmp_path, train=False, download=False)
    assert len(ds) == 10000 and ds.image_shape == (1, 28, 28) and DEBIAN in ds.source
    assert np.bincount(ds.labels).tolist() == [1000] * 10


def test_sample_splits_are_shuffled_once_so_a_prefix_holds_every_digit():
    # the file is sorted by digit: unshuffled, Subset(train, range(512)) would hold only zeros and ones
    _, labels = load_mnist_sample(train=True)
    assert np.bincount(labels[:512], minlength=10).min() >= 30
    assert np.bincount(load_mnist_sample(train=False)[1][:100], minlength=10).min() >= 3
    np.testing.assert_array_equal(load_mnist_sample(train=True)[1], labels)      # the same order every call
