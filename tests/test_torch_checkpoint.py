"""PyTorch zip checkpoints read without torch (minidl.torch_checkpoint), and malicious pickles refused unrun.

The round trip needs torch to *write* the file; the reading runs in a subprocess where torch cannot be
imported. The malicious files are built with the standard pickle module and need no torch.
"""
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import minidl
from minidl.torch_checkpoint import LEGACY_MAGIC, CheckpointFormatError, UnsafeCheckpointError
from minidl.weights import WeightsFormatError

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter with torch blocked: an import of torch anywhere raises ImportError.
BLOCKED_READER = r"""
import sys
sys.modules["torch"] = None
import numpy as np
import minidl
try:
    import torch  # noqa: F401
    raise SystemExit("torch was importable")
except ImportError:
    pass
state = minidl.load_weights(sys.argv[1])
np.savez(sys.argv[2], **{name: t.numpy() for name, t in state.items()})
if len(sys.argv) > 3:
    from minidl.models import get_model
    model = get_model("resnet18", weights=sys.argv[1]).eval()
    with minidl.no_grad():
        np.save(sys.argv[4], model(minidl.tensor(np.load(sys.argv[3]))).numpy())
assert all(not name.startswith("torch") for name in sys.modules if sys.modules[name] is not None)
print("read", len(state), "tensors without torch")
"""


def _read_without_torch(*args):
    result = subprocess.run([sys.executable, "-c", BLOCKED_READER, *map(str, args)], cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "without torch" in result.stdout


def test_torch_save_read_without_torch_equals_torch_load(tmp_path):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Linear(5, 2))
    state = net.state_dict()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state.update({
        "transposed": base.t(),                        # a strided view: stride (1, 6)
        "sliced": base[1:3, ::2],                      # an offset into a shared storage, step 2
        "shares_storage": base,                        # the same storage as the two above
        "half": torch.randn(3, dtype=torch.float16),
        "bfloat16": torch.randn(5).to(torch.bfloat16),
        "double": torch.tensor([1e300, -np.inf, np.nan], dtype=torch.float64),
        "extremes": torch.tensor([np.finfo(np.float32).max, np.finfo(np.float32).tiny, -0.0]),
        "int8": torch.tensor([-128, 127], dtype=torch.int8),
        "bool": torch.tensor([True, False]),
        "scalar": torch.tensor(3.5),
        "empty": torch.zeros(0, 3),
    })
    path = tmp_path / "weights.pth"
    torch.save(state, path)
    out = tmp_path / "read.npz"
    _read_without_torch(path, out)
    expected = torch.load(path, weights_only=True)
    got = np.load(out)
    assert list(got.files) == list(expected)
    for name, tensor in expected.items():
        want = tensor.float().numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
        assert got[name].dtype == want.dtype and got[name].shape == want.shape, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)


def test_torchvision_resnet18_file_loads_without_torch_and_gives_torchs_outputs(tmp_path):
    torch = pytest.importorskip("torch")
    from tests.helpers import torchvision_reference
    reference = torchvision_reference("resnet18")
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _read_without_torch(path, tmp_path / "read.npz", tmp_path / "x.npy", tmp_path / "y.npy")
    with torch.no_grad():
        expected = reference(torch.from_numpy(x)).numpy()
    got = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def _zip_checkpoint(path, pickle_bytes, storages=None):
    """A file laid out as torch.save writes it, with ``pickle_bytes`` as its data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle_bytes)
        archive.writestr("archive/byteorder", "little")
        archive.writestr("archive/version", "3\n")
        for key, raw in (storages or {}).items():
            archive.writestr(f"archive/data/{key}", raw)
    return path


class _Reduce:
    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    """(description, pickle bytes, name the refusal must give): each would create ``marker`` if run."""
    touch = f"open({str(marker)!r}, 'w').close()"
    return [
        ("os.system", pickle.dumps({"w": _Reduce(os.system, (f"touch {marker}",))}, protocol=2), "system"),
        ("builtins.eval", pickle.dumps(_Reduce(eval, (touch,)), protocol=2), "builtins.eval"),
        ("builtins.exec, protocol 4 (STACK_GLOBAL)", pickle.dumps(_Reduce(exec, (touch,)), protocol=4),
         "builtins.exec"),
        ("subprocess.call", pickle.dumps(_Reduce(subprocess.call, (["touch", str(marker)],)), protocol=2),
         "subprocess.call"),
        # a global that is neither a storage, a tensor rebuild nor OrderedDict: a model class, by NEWOBJ
        ("a non-storage global", b"\x80\x02ctorch.nn.modules.linear\nLinear\nq\x00)\x81q\x01.", "torch.nn.modules.linear.Linear"),
        ("numpy's reconstructor", b"\x80\x02cnumpy.core.multiarray\n_reconstruct\nq\x00.", "_reconstruct"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_malicious_pickles_are_refused_without_running_anything(tmp_path, case):
    marker = tmp_path / "payload-ran"
    description, payload, name = _payloads(marker)[case]
    path = _zip_checkpoint(tmp_path / "evil.pth", payload)
    with pytest.raises(UnsafeCheckpointError, match=name.replace(".", r"\.")) as info:
        minidl.load_weights(path)
    assert "refuses the global" in str(info.value) and str(path) in str(info.value)
    assert not marker.exists(), f"{description}: the payload ran"


def test_the_payloads_are_live_when_unpickled_normally(tmp_path):
    """The control: plain pickle.loads runs the same bytes (so the test above can fail)."""
    marker = tmp_path / "payload-ran"
    for description, payload, _ in _payloads(marker)[1:3]:   # eval and exec: no shell needed
        pickle.loads(payload)
        assert marker.exists(), description
        marker.unlink()


def test_build_on_anything_but_an_ordered_dict_is_refused(tmp_path):
    # a rebuild function (an allowed global) given a __dict__ update by BUILD
    payload = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\nq\x00}q\x01X\x01\x00\x00\x00aK\x01sb."
    path = _zip_checkpoint(tmp_path / "build.pth", payload)
    with pytest.raises(UnsafeCheckpointError, match="BUILD"):
        minidl.load_weights(path)


def _unicode(text):
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


def _ints(values):
    return b"(" + b"".join(b"K" + bytes([v]) for v in values) + b"t"


def _tensor_pickle(size, stride, offset=0, numel=4):
    """Opcode by opcode, what torch.save writes for {"w": a float32 tensor}: a rebuild call whose first
    argument is the persistent id of storage "0"."""
    storage = b"(" + _unicode("storage") + b"ctorch\nFloatStorage\n" + _unicode("0") + _unicode("cpu") + \
        b"K" + bytes([numel]) + b"tQ"
    hooks = b"ccollections\nOrderedDict\n)R"
    args = b"(" + storage + b"K" + bytes([offset]) + _ints(size) + _ints(stride) + b"\x89" + hooks + b"t"
    return b"\x80\x02}" + _unicode("w") + b"ctorch._utils\n_rebuild_tensor_v2\n" + args + b"Rs."


def test_hand_made_checkpoint_reads_and_geometry_past_the_storage_is_refused(tmp_path):
    raw = np.arange(4, dtype="<f4").tobytes()
    good = _zip_checkpoint(tmp_path / "good.pth", (_tensor_pickle((2, 2), (1, 2))), {"0": raw})
    np.testing.assert_array_equal(minidl.load_weights(good)["w"].numpy(), [[0, 2], [1, 3]])
    bad = _zip_checkpoint(tmp_path / "bad.pth", (_tensor_pickle((3, 3), (3, 1))), {"0": raw})
    with pytest.raises(CheckpointFormatError, match="reads past its storage"):
        minidl.load_weights(bad)


def test_legacy_and_other_files_are_refused_clearly(tmp_path):
    marker = tmp_path / "payload-ran"
    legacy = tmp_path / "legacy.pth"
    legacy.write_bytes(LEGACY_MAGIC + pickle.dumps(_Reduce(os.system, (f"touch {marker}",)), protocol=2))
    with pytest.raises(WeightsFormatError, match="legacy .*PyTorch < 1.6") as info:
        minidl.load_weights(legacy)
    assert "\n" not in str(info.value) and not marker.exists()
    not_torch = tmp_path / "notes.zip"
    with zipfile.ZipFile(not_torch, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(WeightsFormatError, match="not a weights file"):
        minidl.load_weights(not_torch)
    jit = tmp_path / "scripted.pt"
    with zipfile.ZipFile(jit, "w") as archive:
        archive.writestr("scripted/constants.pkl", b"\x80\x02).")
        archive.writestr("scripted/code/__torch__.py", "")
    with pytest.raises(CheckpointFormatError, match="TorchScript"):
        minidl.load_weights(jit)


def test_legacy_file_written_by_torch_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "old.pth"
    torch.save({"w": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(WeightsFormatError, match="legacy"):
        minidl.load_weights(path)


def test_truncated_checkpoint_is_one_clear_error(tmp_path):
    raw = np.arange(4, dtype="<f4").tobytes()
    good = _zip_checkpoint(tmp_path / "good.pth", (_tensor_pickle((2, 2), (2, 1))), {"0": raw})
    cut = tmp_path / "cut.pth"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises((WeightsFormatError, CheckpointFormatError)) as info:
        minidl.load_weights(cut)
    assert "\n" not in str(info.value)
