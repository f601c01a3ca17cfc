import numpy as np
import pytest

from minidl.data import CIFAR10
from minidl.data import download as dl

from .fakes import FakeOpener, checksum_of, cifar_arrays, make_cifar_tar, write_cifar_batch


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A small cifar-10-python.tar.gz, pinned as the official one and served at CIFAR10.url."""
    archive = make_cifar_tar(tmp_path / "server", per_batch=4)
    monkeypatch.setitem(dl.CHECKSUMS, "cifar10/cifar-10-python.tar.gz", checksum_of(archive))
    opener = FakeOpener({CIFAR10.url: [archive.read_bytes()]})
    monkeypatch.setattr(dl, "urlopen", opener)
    return archive, opener


def test_download_unpack_and_read(tmp_path, served):
    _, opener = served
    train = CIFAR10(root=tmp_path / "cache", train=True)
    test = CIFAR10(root=tmp_path / "cache", train=False)
    assert (len(train), len(test)) == (20, 4)
    image, label = train[5]
    assert image.shape == (3, 32, 32) and image.dtype == np.float32 and 0 <= label < 10
    expected_images, expected_labels = cifar_arrays(4, seed=1)  # data_batch_2 holds items 4..7
    np.testing.assert_allclose(image * 255, expected_images[1], atol=1e-4)
    assert label == expected_labels[1]
    assert opener.calls == [CIFAR10.url]  # the test split reused the unpacked folder
    assert train.classes[0] == "airplane" and train.num_classes == 10 and train.image_shape == (3, 32, 32)
    assert len(train.mean) == 3 and len(train.std) == 3


def test_unpacked_folder_is_enough(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(folder / name, *cifar_arrays(2, seed=i))
    assert len(CIFAR10(root=tmp_path, train=True, download=False)) == 10


def test_minidl_s_own_damaged_archive_is_replaced(tmp_path, served, caplog):
    archive, opener = served
    root = tmp_path / "cache"
    dl.fetch([CIFAR10.url], root / archive.name, dl.CHECKSUMS["cifar10/cifar-10-python.tar.gz"], opener=opener)
    (root / archive.name).write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert len(CIFAR10(root=root, train=False)) == 4
    assert opener.calls == [CIFAR10.url] * 2 and "minidl's own damaged download" in caplog.text


def test_a_user_s_truncated_archive_is_named_and_kept(tmp_path, served):
    archive, opener = served
    root = tmp_path / "mine"
    root.mkdir()
    truncated = archive.read_bytes()[: archive.stat().st_size // 2]
    (root / archive.name).write_bytes(truncated)
    with pytest.raises(ValueError, match=f"{root / archive.name}: cannot unpack"):
        CIFAR10(root=root, train=False)
    assert (root / archive.name).read_bytes() == truncated and opener.calls == []
    assert sorted(p.name for p in root.iterdir()) == [archive.name]


def test_an_incomplete_batch_folder_is_refused_not_replaced(tmp_path, served):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batch(folder / "data_batch_1", *cifar_arrays(2, seed=0))
    with pytest.raises(ValueError, match="lacks data_batch_2.*leaves the folder as it is"):
        CIFAR10(root=tmp_path, train=True)
    assert sorted(p.name for p in folder.iterdir()) == ["data_batch_1"]


def test_missing_data_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        CIFAR10(root=tmp_path / "absent", download=False)
    with pytest.raises(FileNotFoundError, match="download=True"):
        CIFAR10(root=tmp_path, download=False)


def test_bad_batch_is_named(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        write_cifar_batch(folder / name, *cifar_arrays(2, seed=i))
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        CIFAR10(root=tmp_path, train=False, download=False)
