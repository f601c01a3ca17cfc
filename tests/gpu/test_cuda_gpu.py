"""minidl.cuda on a real device: device queries, memory, synchronisation, and the TF32 switch's effect.

Skipped without CuPy and a CUDA device (tests/test_cuda_api.py covers the rest everywhere).
"""
import numpy as np
import pytest

import minidl
import minidl.cuda as cuda
from minidl.backend import gpu_available

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")


@pytest.fixture
def tf32_off():
    previous = cuda.set_tf32(False)
    yield
    cuda.set_tf32(previous)


def test_device_queries():
    assert cuda.is_available() and cuda.device_count() >= 1
    assert cuda.current_device() == 0
    assert cuda.get_device_name() and cuda.get_device_capability()[0] >= 3
    info = cuda.versions()
    assert {"cupy", "cuda_runtime", "cuda_driver", "device", "compute_capability"} <= set(info)
    with cuda.device(cuda.device_count() - 1):
        assert cuda.current_device() == cuda.device_count() - 1
    assert cuda.current_device() == 0


def test_memory_stats_follow_allocations():
    cuda.synchronize()
    before = cuda.memory_allocated()
    x = minidl.zeros(1024, 1024, device="gpu")          # 4 MiB
    assert cuda.memory_allocated() >= before + 4 * 2**20
    assert cuda.memory_reserved() >= cuda.memory_allocated()
    free, total = cuda.mem_get_info()
    assert 0 < free <= total
    del x
    cuda.empty_cache()
    assert cuda.memory_allocated() == before


def tf32_probe(shape_a, shape_b):
    """A product whose exact float32 value (1024.25 per entry) rounds to 1024 when inputs are TF32.

    1 + 2**-12 needs 12 mantissa bits; TF32 keeps 10, so each input rounds to 1.
    """
    import cupy
    a = cupy.full(shape_a, 1 + 2.0**-12, dtype=cupy.float32)
    b = cupy.ones(shape_b, dtype=cupy.float32)
    return float(cupy.abs((a @ b) - 1024.25).max())


SHAPES = {"2-d (cublasGemmEx)": ((256, 1024), (1024, 256)),
          "batched (strided)": ((4, 256, 1024), (4, 1024, 256)),
          "batched, broadcast (conv's W @ col)": ((1, 4, 256, 1024), (3, 4, 1024, 256))}


@pytest.mark.parametrize("shapes", SHAPES.values(), ids=SHAPES.keys())
def test_tf32_switch_takes_effect_after_the_first_gemm(tf32_off, shapes):
    assert tf32_probe(*shapes) < 1e-3                       # a first GEMM, in float32
    cuda.set_tf32(True)
    if cuda.get_device_capability() < (8, 0):
        pytest.skip("TF32 needs compute capability 8.0")
    assert abs(tf32_probe(*shapes) - 0.25) < 1e-3            # the same GEMM now rounds its inputs
    cuda.set_tf32(False)
    assert tf32_probe(*shapes) < 1e-3


def test_tf32_is_off_by_default_in_a_fresh_process():
    import os
    import subprocess
    import sys
    code = ("import minidl.cuda as c, tests.gpu.test_cuda_gpu as t\n"
            "print(c.tf32_enabled(), t.tf32_probe((256, 1024), (1024, 256)) < 1e-3, "
            "t.tf32_probe((4, 256, 1024), (4, 1024, 256)) < 1e-3)")
    env = {k: v for k, v in os.environ.items() if k not in ("CUPY_TF32", "NVIDIA_TF32_OVERRIDE")}
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "True", "True"]


def test_to_device_round_trip_is_differentiable():
    x = minidl.randn(3, 4, requires_grad=True)
    y = (x.to("gpu") * 2).to("cpu")
    y.sum().backward()
    assert y.device == "cpu" and x.grad.device == "cpu"
    np.testing.assert_allclose(x.grad.numpy(), 2.0)
