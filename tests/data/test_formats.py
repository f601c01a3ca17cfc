import gzip
import os
import pickle
import sys

import numpy as np
import pytest

from minidl.data.formats import read_cifar_batch, read_idx, read_image

from .fakes import cifar_arrays, write_cifar_batch, write_idx


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_idx_round_trip(tmp_path, name):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    array = read_idx(write_idx(tmp_path / name, images))
    assert array.dtype == np.uint8 and array.shape == (5, 28, 28)
    np.testing.assert_array_equal(array, images)


def test_idx_big_endian_int32(tmp_path):
    values = np.array([1, -2, 70000], dtype=">i4")
    path = tmp_path / "ints-idx1"
    path.write_bytes(bytes([0, 0, 0x0C, 1]) + (3).to_bytes(4, "big") + values.tobytes())
    np.testing.assert_array_equal(read_idx(path), [1, -2, 70000])


def test_idx_wrong_magic_names_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(b"\x12\x34\x08\x03" + bytes(100)))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte\.gz: not an IDX file"):
        read_idx(path)


def test_idx_wrong_size_names_the_file(tmp_path):
    path = write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-28])  # one row short
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: IDX header says shape \(4, 28, 28\)"):
        read_idx(path)


def test_truncated_gzip_names_the_file(tmp_path):
    path = write_idx(tmp_path / "x-idx3-ubyte.gz", np.zeros((50, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(ValueError, match=r"x-idx3-ubyte\.gz: truncated or corrupt gzip"):
        read_idx(path)


def test_cifar_batch_round_trip(tmp_path):
    images, labels = cifar_arrays(6, seed=1)
    got_images, got_labels = read_cifar_batch(write_cifar_batch(tmp_path / "data_batch_1", images, labels))
    np.testing.assert_array_equal(got_images, images)
    np.testing.assert_array_equal(got_labels, labels)
    assert got_labels.dtype == np.int64


def test_cifar_batch_planes_are_red_green_blue(tmp_path):
    row = np.concatenate([np.full(1024, 10), np.full(1024, 20), np.full(1024, 30)]).astype(np.uint8)
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({b"data": row[None], b"labels": [3]}, protocol=2))
    images, _ = read_cifar_batch(path)
    assert images[0, :, 5, 7].tolist() == [10, 20, 30]


def test_cifar_batch_with_wrong_sizes_names_the_file(tmp_path):
    path = tmp_path / "data_batch_2"
    path.write_bytes(pickle.dumps({b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}, protocol=2))
    with pytest.raises(ValueError, match="data_batch_2: expected uint8 data of shape"):
        read_cifar_batch(path)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_cifar_reader_refuses_code_in_pickles(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": []}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        read_cifar_batch(path)


def test_read_image_without_pillow_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "PIL", None)
    with pytest.raises(ImportError, match=r"pip install 'minidl\[images\]'"):
        read_image(tmp_path / "a.png")
