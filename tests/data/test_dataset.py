import numpy as np
import pytest

from minidl.data import ArrayDataset, Dataset, Subset, random_split
from minidl.data.transforms import Normalize, RandomCrop


def dataset(n=20, transform=None):
    images = np.arange(n * 2 * 4 * 4, dtype=np.uint8).reshape(n, 2, 4, 4)
    return ArrayDataset(images, np.arange(n) % 3, transform=transform)


def test_items_are_float32_chw_and_int_labels():
    image, label = dataset()[5]
    assert image.shape == (2, 4, 4) and image.dtype == np.float32
    assert isinstance(label, int) and label == 2
    np.testing.assert_allclose(image * 255, np.arange(160, 192).reshape(2, 4, 4), rtol=1e-6)


def test_get_batch_equals_items():
    ds = dataset(transform=Normalize((0.5, 0.5), (0.25, 0.25)))
    indices = np.array([7, 1, 19])
    images, labels = ds.get_batch(indices)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    for row, i in enumerate(indices):
        np.testing.assert_allclose(images[row], ds[i][0], rtol=1e-6)
        assert labels[row] == ds[i][1]


def test_grey_images_get_a_channel_axis_and_floats_keep_values():
    ds = ArrayDataset(np.full((3, 5, 5), 0.7, np.float64), [0, 1, 1])
    assert ds.image_shape == (1, 5, 5) and ds.num_classes == 2 and ds.classes == ("0", "1")
    assert ds[0][0].dtype == np.float32 and np.allclose(ds[0][0], 0.7)


def test_description_attributes():
    ds = dataset()
    assert ds.image_shape == (2, 4, 4)
    assert dataset(transform=RandomCrop(3)).image_shape == (2, 3, 3)
    mean, std = ds.mean, ds.std
    pixels = ds.images.astype(np.float64) / 255
    np.testing.assert_allclose(mean, pixels.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(std, pixels.std(axis=(0, 2, 3)))
    given = ArrayDataset(ds.images, ds.labels, mean=(0.1, 0.2), std=(0.3, 0.4))
    assert given.mean == (0.1, 0.2) and given.std == (0.3, 0.4)


def test_image_shape_draws_nothing_from_the_global_generator():
    import minidl
    state = minidl.get_rng_state()
    dataset(transform=RandomCrop(3)).image_shape
    assert minidl.get_rng_state() == state


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((4, 2), np.uint8), [0, 1, 2, 3], "images must be"),
    (np.zeros((4, 1, 2, 2), np.int32), [0, 1, 2, 3], "uint8 or float"),
    (np.zeros((4, 1, 2, 2), np.uint8), [0, 1, 2], "4 images but 3 labels"),
    (np.zeros((4, 1, 2, 2), np.uint8), [0.0, 1.0, 2.0, 3.0], "integer"),
])
def test_bad_arrays_are_refused_in_words(images, labels, message):
    with pytest.raises(ValueError, match=message):
        ArrayDataset(images, labels)


def test_base_class_says_what_is_missing():
    class Half(Dataset):
        def __len__(self):
            return 1

    with pytest.raises(NotImplementedError, match="Half must define __getitem__"):
        Half()[0]


def test_subset_maps_indices_and_batches():
    ds = dataset()
    sub = Subset(ds, [4, 9, 2])
    assert len(sub) == 3 and sub[1][1] == ds[9][1]
    images, labels = sub.get_batch(np.array([2, 0]))
    np.testing.assert_array_equal(images, ds.get_batch(np.array([2, 4]))[0])
    assert sub.classes == ds.classes and sub.image_shape == ds.image_shape
    with pytest.raises(IndexError):
        Subset(ds, [20])


def test_random_split_is_a_seeded_partition():
    ds = dataset(n=10)
    a, b = random_split(ds, [7, 3], seed=0)
    assert len(a) == 7 and len(b) == 3
    assert sorted(np.concatenate([a.indices, b.indices]).tolist()) == list(range(10))
    again = random_split(ds, [7, 3], seed=0)
    np.testing.assert_array_equal(again[0].indices, a.indices)
    assert not np.array_equal(random_split(ds, [7, 3], seed=1)[0].indices, a.indices)


def test_random_split_fractions_and_errors():
    parts = random_split(dataset(n=10), [0.55, 0.45], seed=0)
    assert [len(p) for p in parts] == [6, 4]
    with pytest.raises(ValueError, match="summing"):
        random_split(dataset(n=10), [5, 4], seed=0)
