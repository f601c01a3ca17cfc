"""The ``backend`` fixture: each fast kernel set the kernel tests run against the NumPy reference.

    cpu         minidl.kernels.cpu (Numba), as a model runs it: small arrays on the calling thread
    cpu_split   the same kernels with every loop split over 3 threads, 4 parts a thread (minidl.kernels.threads:
                no minimum size), so every part boundary and the pool itself are exercised on the tests' small arrays
    host_shim   kernels/gpu.py with the CUDA sources compiled by g++ (tests/kernels/host_shim.py), NumPy
                arrays for device arrays, launching 3 blocks of 7 threads so every grid-stride loop wraps;
                skipped without g++
    gpu         kernels/gpu.py on a CUDA device through CuPy; skipped without CuPy and a device
"""
import pytest

from minidl.backend import gpu_available
from tests.kernels import host_shim
from tests.kernels.helpers import Backend


@pytest.fixture(scope="session")
def shim_build_dir(tmp_path_factory):
    if host_shim.GXX is None:
        pytest.skip("g++ is not installed: the CUDA sources cannot run on the host shim")
    return tmp_path_factory.mktemp("cuda_host_shim")


@pytest.fixture(params=["cpu", "cpu_split", "host_shim", "gpu"])
def backend(request, monkeypatch):
    from minidl.kernels import cpu, gpu
    if request.param == "cpu":
        yield Backend("cpu", cpu)
    elif request.param == "cpu_split":
        from minidl.kernels import threads
        monkeypatch.setattr(threads, "MIN_WORK", 0)
        monkeypatch.setattr(threads, "MIN_ELEMENTWISE", 0)
        monkeypatch.setattr(threads, "FINE_WORK", 0)            # and PARTS_PER_THREAD parts a thread
        monkeypatch.setattr(threads, "_num_threads", 3)
        yield Backend("cpu_split", cpu)
    elif request.param == "host_shim":
        host_shim.use_host_shim(monkeypatch, request.getfixturevalue("shim_build_dir"))
        yield Backend("host_shim", gpu)
        gpu._module.cache_clear()
    else:
        if not gpu_available():
            pytest.skip("needs CuPy and a CUDA device")
        import cupy
        yield Backend("gpu", gpu, cupy.asarray, cupy.asnumpy)
