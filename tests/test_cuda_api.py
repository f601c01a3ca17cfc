"""minidl.cuda without a GPU: clean reports and errors, and the TF32 switch's environment handling.

Runs everywhere. "No CuPy" and "no device" are simulated (``backend.cupy`` set to None or to a stand-in),
so these tests mean the same on a machine that has a GPU; tests/gpu/test_cuda_gpu.py checks the device side.
"""
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import minidl
import minidl.cuda as cuda
from minidl import backend, nn

NEEDS_DEVICE = [cuda.current_device, cuda.get_device_name, cuda.get_device_capability, cuda.synchronize,
                cuda.memory_allocated, cuda.memory_reserved, cuda.mem_get_info, cuda.empty_cache, cuda.versions,
                lambda: cuda.set_device(0), lambda: cuda.device(0).__enter__()]


def fake_cupy(count=0, error=None, capability="90"):
    """A stand-in for the cupy module with ``count`` devices (or whose device query raises ``error``)."""
    def get_device_count():
        if error is not None:
            raise error
        return count

    class Device:
        compute_capability = capability

        def __init__(self, index=None):
            self.index = index

        def use(self):
            calls.append(("use", self.index))

    calls = []
    runtime = types.SimpleNamespace(getDeviceCount=get_device_count, getDevice=lambda: 0)
    device = types.SimpleNamespace(get_cublas_handle=lambda: "handle")
    cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime, Device=Device, device=device),
                                 ndarray=type("ndarray", (), {}), calls=calls)
    return cupy


@pytest.fixture
def no_cupy(monkeypatch):
    monkeypatch.setattr(backend, "cupy", None)


@pytest.fixture
def tf32_env(monkeypatch):
    """CUPY_TF32 unset for the test, and restored afterwards whatever set_tf32 wrote."""
    monkeypatch.delenv(cuda.TF32_ENV, raising=False)
    yield
    monkeypatch.delenv(cuda.TF32_ENV, raising=False)


def test_reports_no_gpu_without_cupy(no_cupy):
    assert cuda.is_available() is False
    assert cuda.device_count() == 0


@pytest.mark.parametrize("call", NEEDS_DEVICE)
def test_device_calls_without_cupy_say_how_to_install(no_cupy, call):
    with pytest.raises(RuntimeError, match=r"CuPy is not installed: pip install 'minidl\[gpu\]'"):
        call()


@pytest.mark.parametrize("call", NEEDS_DEVICE)
def test_device_calls_without_a_device_say_so(monkeypatch, call):
    monkeypatch.setattr(backend, "cupy", fake_cupy(count=0))
    assert cuda.is_available() is False and cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="CuPy sees no CUDA device"):
        call()


def test_a_broken_driver_counts_as_no_device(monkeypatch):
    monkeypatch.setattr(backend, "cupy", fake_cupy(error=OSError("libcuda.so.1: cannot open shared object")))
    assert cuda.device_count() == 0
    with pytest.raises(RuntimeError, match=r"CuPy sees no CUDA device \(OSError: libcuda"):
        cuda.current_device()


def test_set_device_checks_the_number(monkeypatch):
    cupy = fake_cupy(count=2)
    monkeypatch.setattr(backend, "cupy", cupy)
    monkeypatch.setattr(cuda, "_apply_tf32", lambda cupy: None)
    with pytest.raises(ValueError, match=r"device 2 does not exist; CuPy sees 2 device\(s\), 0..1"):
        cuda.set_device(2)
    with pytest.raises(TypeError, match="expected a device number"):
        cuda.set_device(1.0)
    with pytest.raises(ValueError, match="expected a GPU device"):
        cuda.set_device("cpu")
    cuda.set_device("cuda:1")
    with cuda.device(1):
        pass
    assert cupy.calls == [("use", 1), ("use", 1), ("use", 0)]   # the context manager restores device 0


def test_tensor_to_gpu_without_cupy_says_how_to_install(no_cupy):
    x = minidl.randn(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"CuPy is not installed: pip install 'minidl\[gpu\]'"):
        x.to("gpu")
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        nn.Linear(3, 2).to("gpu")
    with pytest.raises(RuntimeError, match="CuPy is not installed"):
        minidl.zeros(2, device="cuda")


def test_tensor_to_gpu_without_a_device_says_so(monkeypatch):
    monkeypatch.setattr(backend, "cupy", fake_cupy(count=0))
    with pytest.raises(RuntimeError, match="CuPy sees no CUDA device"):
        minidl.randn(2, 3).to("gpu")


def test_tf32_is_off_by_default(tf32_env):
    assert cuda.tf32_enabled() is False


@pytest.mark.parametrize("value, enabled", [("0", False), ("1", True), ("2", True), ("", False), (" 1 ", True)])
def test_tf32_reads_cupy_tf32_as_cupy_does(monkeypatch, tf32_env, value, enabled):
    monkeypatch.setenv(cuda.TF32_ENV, value)
    assert cuda.tf32_enabled() is enabled


def test_tf32_rejects_a_variable_cupy_cannot_read(monkeypatch, tf32_env):
    monkeypatch.setenv(cuda.TF32_ENV, "yes")
    with pytest.raises(ValueError, match="CUPY_TF32='yes' is not an integer"):
        cuda.tf32_enabled()


def test_set_tf32_without_cupy_records_the_choice_for_a_later_cupy(no_cupy, tf32_env):
    assert cuda.set_tf32(True) is False               # returns the previous setting
    assert os.environ[cuda.TF32_ENV] == "1" and cuda.tf32_enabled()
    assert cuda.set_tf32(False) is True
    assert os.environ[cuda.TF32_ENV] == "0" and not cuda.tf32_enabled()


@pytest.mark.parametrize("bad", ["1", None, 2, 0.5])
def test_set_tf32_takes_a_bool(tf32_env, bad):
    with pytest.raises(TypeError, match="expected True or False"):
        cuda.set_tf32(bad)
    assert cuda.TF32_ENV not in os.environ


def test_set_tf32_reaches_child_processes(no_cupy, tf32_env):
    cuda.set_tf32(True)
    out = subprocess.run([sys.executable, "-c", "import os; print(os.environ['CUPY_TF32'])"],
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "1"


def fake_cupy_with_cublas(monkeypatch, capability="90"):
    """A one-device CuPy stand-in whose GEMM settings (compute type, cuBLAS math mode) are recorded."""
    cupy = fake_cupy(count=1, capability=capability)
    settings = {}
    linalg = types.SimpleNamespace(COMPUTE_TYPE_DEFAULT=1, COMPUTE_TYPE_TF32=7,
                                   set_compute_type=lambda dtype, t: settings.__setitem__(np.dtype(dtype).name, t))
    cublas = types.SimpleNamespace(CUBLAS_DEFAULT_MATH=0, CUBLAS_TF32_TENSOR_OP_MATH=3,
                                   setMathMode=lambda handle, mode: settings.__setitem__(handle, mode))
    monkeypatch.setattr(backend, "cupy", cupy)
    monkeypatch.setitem(sys.modules, "cupy._core._routines_linalg", linalg)
    monkeypatch.setitem(sys.modules, "cupy_backends.cuda.libs.cublas", cublas)
    return settings


def test_set_tf32_switches_both_gemm_paths_at_once(monkeypatch, tf32_env):
    settings = fake_cupy_with_cublas(monkeypatch)
    cuda.set_tf32(True)
    assert settings == {"float32": 7, "handle": 3}    # 2-D GEMMs (compute type) and batched (math mode)
    cuda.set_tf32(False)
    assert settings == {"float32": 1, "handle": 0}
    cuda.set_device(0)                                  # a device switch re-applies the setting
    assert settings == {"float32": 1, "handle": 0}


def test_set_tf32_on_an_old_gpu_warns_and_changes_nothing(monkeypatch, tf32_env):
    settings = fake_cupy_with_cublas(monkeypatch, capability="75")
    with pytest.warns(RuntimeWarning, match="TF32 needs compute capability 8.0"):
        cuda.set_tf32(True)
    assert settings == {}


def test_imports_and_reports_cleanly_where_cupy_cannot_be_imported():
    """A fresh interpreter in which `import cupy` fails, as on a machine without CuPy."""
    code = ("import sys; sys.modules['cupy'] = None\n"
            "import minidl, minidl.cuda as cuda\n"
            "print(cuda.is_available(), cuda.device_count(), cuda.tf32_enabled())\n"
            "try:\n    cuda.current_device()\nexcept RuntimeError as e:\n    print(e)\n")
    env = {k: v for k, v in os.environ.items() if k != cuda.TF32_ENV}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout.splitlines()
    assert out == ["False 0 False", "minidl.cuda: CuPy is not installed: pip install 'minidl[gpu]'"]
