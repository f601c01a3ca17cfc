import pickle

import numpy as np
import pytest

import minidl
from minidl.data import ArrayDataset, DataLoader, Dataset
from minidl.data.transforms import Compose, RandomCrop, RandomHorizontalFlip


def numbered(n=23, transform=None):
    """Image i is filled with the value i / 255 (as uint8 i), label i % 5: a batch tells which items it holds."""
    images = np.repeat(np.arange(n, dtype=np.uint8), 3 * 6 * 6).reshape(n, 3, 6, 6)
    return ArrayDataset(images, np.arange(n) % 5, transform=transform)


def ids(images):
    return np.rint(images.numpy()[:, 0, 0, 0] * 255).astype(int).tolist()


def collect(loader, batches=None):
    out = []
    for images, labels in loader:
        out.append((images.numpy().copy(), labels.numpy().copy()))
        if batches is not None and len(out) == batches:
            break
    return out


def assert_same(batches_a, batches_b):
    assert len(batches_a) == len(batches_b)
    for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_batches_shapes_dtypes_and_order():
    loader = DataLoader(numbered(), batch_size=5)
    batches = list(loader)
    assert len(loader) == 5 and len(batches) == 5
    images, labels = batches[0]
    assert isinstance(images, minidl.Tensor) and isinstance(labels, minidl.Tensor)
    assert images.shape == (5, 3, 6, 6) and images.dtype == np.float32 and labels.dtype == np.int64
    assert ids(batches[-1][0]) == [20, 21, 22]
    assert [i for images, _ in batches for i in ids(images)] == list(range(23))


def test_drop_last():
    loader = DataLoader(numbered(), batch_size=5, drop_last=True)
    assert len(loader) == 4
    assert [len(labels) for _, labels in loader] == [5, 5, 5, 5]


def test_shuffle_is_determined_by_the_seed_and_changes_each_epoch():
    def epochs(seed, count=2):
        loader = DataLoader(numbered(), batch_size=4, shuffle=True, seed=seed)
        return [[i for images, _ in loader for i in ids(images)] for _ in range(count)]

    first, second = epochs(seed=7)
    assert sorted(first) == list(range(23)) and sorted(second) == list(range(23))
    assert first != second
    assert epochs(seed=7) == [first, second]
    assert epochs(seed=8)[0] != first


def test_shuffle_uses_its_own_generator_not_the_global_one():
    minidl.manual_seed(0)
    loader = DataLoader(numbered(), batch_size=4, shuffle=True, seed=3)
    state = minidl.get_rng_state()
    order = [i for images, _ in loader for i in ids(images)]
    assert minidl.get_rng_state() == state
    minidl.randn(10)  # model code drawing random numbers does not move the data order
    other = DataLoader(numbered(), batch_size=4, shuffle=True, seed=3)
    assert [i for images, _ in other for i in ids(images)] == order


def test_default_seed_follows_manual_seed():
    minidl.manual_seed(5)
    a = DataLoader(numbered(), shuffle=True).seed
    minidl.manual_seed(5)
    assert DataLoader(numbered(), shuffle=True).seed == a


AUGMENT = Compose([RandomCrop(6, padding=2), RandomHorizontalFlip()])


@pytest.mark.parametrize("options", [dict(prefetch=2), dict(prefetch=1, num_workers=3), dict(num_workers=2)])
def test_background_loading_gives_the_same_batches(options):
    reference = collect(DataLoader(numbered(transform=AUGMENT), batch_size=4, shuffle=True, seed=1, prefetch=0))
    loader = DataLoader(numbered(transform=AUGMENT), batch_size=4, shuffle=True, seed=1, **options)
    assert_same(collect(loader), reference)


def test_resume_mid_epoch_gives_identical_batches():
    def make():
        return DataLoader(numbered(transform=AUGMENT), batch_size=4, shuffle=True, seed=2, transform=RandomCrop(5))

    original = make()
    collect(original)                       # epoch 0
    collect(original, batches=2)            # part of epoch 1 ...
    state = pickle.loads(pickle.dumps(original.state_dict()))
    assert (state["epoch"], state["batch"]) == (1, 2)
    rest = collect(original)                # a new loop abandons the rest of epoch 1: this is epoch 2
    assert original.epoch == 3

    uninterrupted = make()
    collect(uninterrupted)
    full_epoch_1 = collect(uninterrupted)

    resumed = make()
    resumed.load_state_dict(state)
    assert_same(collect(resumed), full_epoch_1[2:])  # not epoch 0's order, not epoch 1 from the start
    assert resumed.epoch == 2
    assert_same(collect(resumed), rest)     # and the epoch after follows on as it would have


def test_resume_at_an_epoch_boundary():
    original = DataLoader(numbered(), batch_size=5, shuffle=True, seed=4)
    collect(original)
    state = original.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 0)
    following = collect(original)
    resumed = DataLoader(numbered(), batch_size=5, shuffle=True, seed=999)
    resumed.load_state_dict(state)
    assert_same(collect(resumed), following)


def test_state_after_the_last_batch_points_to_the_next_epoch():
    loader = DataLoader(numbered(), batch_size=5, shuffle=True, seed=4)
    iterator = iter(loader)
    for _ in range(len(loader)):
        next(iterator)
    state = loader.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 0)
    resumed = DataLoader(numbered(), batch_size=5, shuffle=True, seed=4)
    resumed.load_state_dict(state)
    assert_same(collect(resumed), collect(loader))


def test_load_state_dict_rejects_a_position_past_the_end():
    loader = DataLoader(numbered(), batch_size=5)
    state = dict(loader.state_dict(), batch=9)
    with pytest.raises(ValueError, match="out of range"):
        loader.load_state_dict(state)


def test_loader_transform_and_per_item_datasets():
    class Squares(Dataset):
        classes = ("even", "odd")

        def __len__(self):
            return 6

        def __getitem__(self, i):
            return np.full((1, 2, 2), i, np.float32), i % 2

    images, labels = next(iter(DataLoader(Squares(), batch_size=4, transform=lambda x: x * 10)))
    assert images.numpy()[:, 0, 0, 0].tolist() == [0, 10, 20, 30] and labels.numpy().tolist() == [0, 1, 0, 1]


def test_mismatched_image_sizes_are_a_clear_error():
    class Ragged(Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.zeros((1, 2 + i, 2), np.float32), 0

    with pytest.raises(ValueError, match="different shapes"):
        next(iter(DataLoader(Ragged(), batch_size=2, prefetch=0)))


def test_errors_in_the_loading_thread_reach_the_caller():
    class Broken(Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, i):
            if i == 5:
                raise KeyError("item 5 is missing")
            return np.zeros((1, 2, 2), np.float32), 0

    loader = DataLoader(Broken(), batch_size=2, prefetch=2)
    with pytest.raises(KeyError, match="item 5"):
        collect(loader)


def test_argument_checks():
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(numbered(), batch_size=0)
    with pytest.raises(ValueError, match="seed"):
        DataLoader(numbered(), seed=-1)
