"""minidl.save_weights / minidl.load_weights: safetensors and .npz round trips, PyTorch reading minidl's
files, boundary values, and one-line errors. safetensors tests skip without the package."""
import numpy as np
import pytest

import minidl
from minidl import nn
from minidl.models import get_model
from minidl.weights import WeightsFormatError, detect_format

F32 = np.finfo(np.float32)


def _boundary_state():
    base = np.arange(12, dtype=np.float32).reshape(3, 4)
    return {
        "transposed": base.T,                                   # strided: safetensors 0.8.0 writes it wrong
        "strided_slice": base[::2, 1::2],
        "extremes": np.array([F32.max, F32.min, F32.tiny, -0.0, np.inf, -np.inf], dtype=np.float32),
        "nan": np.array([np.nan], dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "scalar": np.array(2.5, dtype=np.float64),
        "counts": np.array([0, -1, 2**40], dtype=np.int64),
        "half": np.array([1.5, -65504.0], dtype=np.float16),
    }


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_round_trip_keeps_every_value_shape_and_dtype(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    state = _boundary_state()
    path = tmp_path / f"w{suffix}"
    minidl.save_weights({k: minidl.tensor(v) for k, v in state.items()}, path)
    loaded = minidl.load_weights(path)
    assert set(loaded) == set(state)
    for name, want in state.items():
        got = loaded[name].numpy()
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "no temporary file left behind"


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_model_round_trip_gives_the_same_outputs(tmp_path, suffix):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    minidl.manual_seed(1)
    source = get_model("resnet20").eval()
    for m in source.modules():   # BN statistics that are not the defaults, so they must travel too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = np.linspace(-0.3, 0.3, m.num_features)
            m.running_var.data[...] = np.linspace(0.5, 1.5, m.num_features)
    minidl.save_weights(source, tmp_path / f"resnet20{suffix}")
    minidl.manual_seed(2)
    target = get_model("resnet20", weights=tmp_path / f"resnet20{suffix}").eval()
    x = minidl.randn(2, 3, 32, 32)
    with minidl.no_grad():
        np.testing.assert_array_equal(target(x).numpy(), source(x).numpy())
    assert detect_format(tmp_path / f"resnet20{suffix}") == suffix[1:]


def test_pytorch_reads_minidl_safetensors_with_equal_outputs(tmp_path):
    pytest.importorskip("safetensors")
    torch = pytest.importorskip("torch")
    tv_models = pytest.importorskip("torchvision.models")
    from safetensors.torch import load_file
    from tests.models.residual_checks import build
    ours = build("resnet18").eval()
    rng = np.random.default_rng(0)
    for m in ours.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.data[...] = rng.uniform(-0.2, 0.2, m.num_features)
            m.running_var.data[...] = rng.uniform(0.5, 1.5, m.num_features)
    path = tmp_path / "resnet18.safetensors"
    minidl.save_weights(ours, path)
    theirs = tv_models.resnet18(weights=None).eval()
    theirs.load_state_dict(load_file(str(path)), strict=True)    # same names and shapes as torchvision's
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        expected = theirs(torch.from_numpy(x)).numpy()
    with minidl.no_grad():
        got = ours(minidl.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_loads_minidl_files_and_training_checkpoints(tmp_path):
    model = get_model("lenet5")
    minidl.save(model.state_dict(), tmp_path / "plain.weights")
    minidl.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "run.ckpt")
    for name in ("plain.weights", "run.ckpt"):
        loaded = minidl.load_weights(tmp_path / name)
        assert list(loaded) == list(model.state_dict())
        for key, value in model.state_dict().items():
            np.testing.assert_array_equal(loaded[key].numpy(), value.numpy())


def test_existing_files_are_not_overwritten(tmp_path):
    path = tmp_path / "someone_elses.npz"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        minidl.save_weights(get_model("lenet1"), path)
    assert path.read_bytes() == b"precious"
    minidl.save_weights(get_model("lenet1"), path, overwrite=True)
    assert list(minidl.load_weights(path)) == list(get_model("lenet1").state_dict())


def test_bad_files_and_arguments_are_one_clear_line(tmp_path):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\x01 not weights at all")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    for path in (garbage, empty):
        with pytest.raises(WeightsFormatError, match="not a weights file minidl reads") as info:
            minidl.load_weights(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        minidl.load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="suffix must be .safetensors or .npz"):
        minidl.save_weights(get_model("lenet1"), tmp_path / "w.pth")
    with pytest.raises(TypeError, match="expected str names and tensors"):
        minidl.save_weights({"a": [1, 2]}, tmp_path / "w.npz")
    assert not (tmp_path / "w.npz").exists()


def test_truncated_safetensors_is_one_clear_line(tmp_path):
    pytest.importorskip("safetensors")
    path = tmp_path / "w.safetensors"
    minidl.save_weights(get_model("lenet1"), path)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WeightsFormatError) as info:
        minidl.load_weights(cut)
    assert "\n" not in str(info.value) and str(cut) in str(info.value)


def test_wrapped_state_dict_is_unwrapped_and_other_content_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(3, dtype=np.float32))
    assert list(minidl.load_weights(tmp_path / "plain.npz")) == ["w"]
    minidl.save({"epoch": 3, "note": "no tensors"}, tmp_path / "meta.ckpt")
    with pytest.raises(WeightsFormatError, match="not a state dict"):
        minidl.load_weights(tmp_path / "meta.ckpt")
