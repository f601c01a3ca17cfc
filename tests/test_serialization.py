"""minidl.save / minidl.load: round trips, atomic writes, and clear errors for files that are not ours."""
import json
import os
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import minidl
from minidl import nn, optim
from minidl.serialization import SerializationError, load, save


def _same(a, b):
    """Equal values, dtype and shape (NaN equal to NaN)."""
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), (type(a), type(b))
    if isinstance(a, minidl.Tensor):
        _same(a.data, b.data)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b)
    else:
        assert a == b


def test_round_trip_of_nested_containers_dtypes_and_scalars(tmp_path):
    rng = np.random.default_rng(0)
    obj = {
        "float32": rng.standard_normal((3, 4)).astype(np.float32),
        "float64": rng.standard_normal(5),
        "int64": np.arange(-3, 3, dtype=np.int64),
        "uint8": np.arange(7, dtype=np.uint8),
        "bool": np.array([True, False]),
        "zero_dim": np.array(2.5, dtype=np.float32),
        "empty": np.zeros((0, 3), np.float32),
        "tensor": minidl.tensor(rng.standard_normal((2, 3)).astype(np.float32)),
        "nested": {"list": [1, 2.5, "three", None, True, (4, 5)], 7: {"deep": np.ones(2, np.int32)}},
        "numbers": [float("inf"), float("-inf"), float("nan"), 2**100, -1, 0.1],
        "numpy_scalars": [np.float32(1.5), np.int64(-7), np.bool_(True)],
        "string": "héllo",
    }
    save(obj, tmp_path / "x.minidl")
    back = load(tmp_path / "x.minidl")
    _same(obj, back)
    assert isinstance(back["nested"]["list"][5], tuple) and 7 in back["nested"]


def test_non_contiguous_arrays_round_trip_with_their_values(tmp_path):
    """safetensors 0.8.0 wrote transposes wrong (TESTING.md): keep the values, not the memory layout."""
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    obj = {"transposed": base.T, "strided": base[::2, 1::3], "fortran": np.asfortranarray(base),
           "reversed": base[:, ::-1], "tensor_of_view": minidl.Tensor(base.T)}
    assert not obj["transposed"].flags.c_contiguous
    save(obj, tmp_path / "v.minidl")
    back = load(tmp_path / "v.minidl")
    for key in ("transposed", "strided", "fortran", "reversed"):
        np.testing.assert_array_equal(back[key], obj[key])
        assert back[key].flags.c_contiguous
    np.testing.assert_array_equal(back["tensor_of_view"].data, base.T)


def test_model_state_dict_round_trip_into_a_fresh_model(tmp_path):
    minidl.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    model(minidl.randn(5, 1, 8, 8))  # moves the BatchNorm running statistics away from their initial values
    save(model.state_dict(), tmp_path / "w.minidl")
    minidl.manual_seed(2)
    fresh = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    fresh.load_state_dict(load(tmp_path / "w.minidl"))
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    assert isinstance(load(tmp_path / "w.minidl"), dict)


def test_optimizer_state_with_integer_keys_and_tuples_round_trips(tmp_path):
    param = minidl.Parameter(np.ones(3, np.float32))
    opt = optim.Adam([param], lr=0.01)
    param.grad = minidl.tensor(np.full(3, 0.5, np.float32))
    opt.step()
    save(opt.state_dict(), tmp_path / "o.minidl")
    state = load(tmp_path / "o.minidl")
    assert isinstance(state["param_groups"][0]["betas"], tuple) and 0 in state["state"]
    fresh = optim.Adam([minidl.Parameter(np.ones(3, np.float32))], lr=0.01)
    fresh.load_state_dict(state)
    _same(opt.state_dict()["param_groups"], fresh.state_dict()["param_groups"])


def test_objects_that_cannot_be_saved_are_refused_by_name(tmp_path):
    with pytest.raises(SerializationError, match=r"obj\['model'\] of type Linear \(save its state_dict"):
        save({"model": nn.Linear(2, 2)}, tmp_path / "x")
    with pytest.raises(SerializationError, match="dtype object"):
        save({"a": np.array([object()])}, tmp_path / "x")
    with pytest.raises(SerializationError, match="key"):
        save({(1, 2): 3}, tmp_path / "x")
    assert not list(tmp_path.iterdir()), "a refused save must leave nothing behind"


@pytest.mark.parametrize("content, message", [
    (b"", "not a minidl file"),
    (b"hello, this is not a zip archive at all" * 10, "not a minidl file"),
    (None, "not a minidl file"),          # a ZIP without header.json
    ("npy", "not a minidl file"),         # a plain .npy file
])
def test_loading_a_file_that_is_not_ours_names_it(tmp_path, content, message):
    path = tmp_path / "weird.bin"
    if content is None:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("something.txt", "hi")
    elif content == "npy":
        np.save(path, np.arange(3))
        path = path.with_name("weird.bin.npy")
    else:
        path.write_bytes(content)
    with pytest.raises(SerializationError, match=message) as info:
        load(path)
    assert str(path) in str(info.value)


def test_truncated_and_corrupted_files_are_errors_never_wrong_values(tmp_path):
    path = tmp_path / "w.minidl"
    save({"w": np.arange(1000, dtype=np.float32)}, path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 100):
        (tmp_path / "cut").write_bytes(data[:cut])
        with pytest.raises(SerializationError, match="cut"):
            load(tmp_path / "cut")
    corrupt = bytearray(data)
    start = data.index(b"\x93NUMPY")  # the .npy entry
    corrupt[start + 500] ^= 0xFF      # one flipped byte in the array's values
    (tmp_path / "flipped").write_bytes(bytes(corrupt))
    with pytest.raises(SerializationError, match="flipped"):
        load(tmp_path / "flipped")


def test_a_newer_format_version_is_refused_with_advice(tmp_path):
    path = tmp_path / "future.minidl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("header.json", json.dumps({"format": "minidl", "format_version": 99, "num_arrays": 0, "tree": 1}))
    with pytest.raises(SerializationError, match="format version 99.*upgrade"):
        load(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        load(tmp_path / "nothere")
    with pytest.raises(SerializationError, match="directory"):
        load(tmp_path)


def test_a_crash_mid_save_leaves_the_previous_file_intact_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.minidl"
    save({"w": np.arange(10.0), "epoch": 1}, path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full (injected)")
    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="injected"):
        save({"w": np.arange(10.0) * 2, "epoch": 2}, path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.minidl"]


def test_an_interrupt_while_writing_the_arrays_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.minidl"
    save({"w": np.arange(10.0), "epoch": 1}, path)
    calls = []

    def write_then_crash(f, array, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the second array: the file is half written
            raise KeyboardInterrupt
        return real_write(f, array, **kwargs)
    real_write = np.lib.format.write_array
    monkeypatch.setattr(np.lib.format, "write_array", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        save({"a": np.ones(100), "b": np.ones(100), "epoch": 2}, path)
    monkeypatch.undo()
    assert load(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.minidl"]


def test_ordered_dict_keys_keep_their_order(tmp_path):
    obj = OrderedDict((k, np.float32(i)) for i, k in enumerate("zyxw"))
    save(obj, tmp_path / "o")
    assert list(load(tmp_path / "o")) == list("zyxw")
