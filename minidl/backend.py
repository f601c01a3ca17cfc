"""Array backends: NumPy on the CPU, CuPy (optional) on the GPU.

Every op is written once against an "array module" ``xp`` (``numpy`` or ``cupy``) obtained from its inputs
with :func:`get_array_module`, as DeZero and Chainer do. Device-specific code lives only in ``kernels/``.
"""
import numpy as np

try:  # CuPy is optional: without it every CPU feature works.
    import cupy  # type: ignore
except Exception:  # ImportError, or a CuPy built for a CUDA that is not here
    cupy = None


def gpu_available():
    """True when CuPy imports and sees at least one CUDA device."""
    if cupy is None:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def is_gpu_array(a):
    return cupy is not None and isinstance(a, cupy.ndarray)


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if cupy is not None:
        for a in arrays:
            if isinstance(a, cupy.ndarray):
                return cupy
    return np


def device_of(a):
    """'gpu' for a CuPy array, 'cpu' otherwise."""
    return "gpu" if is_gpu_array(a) else "cpu"


def normalize_device(device):
    """Accept 'cpu', 'gpu', 'cuda', 'cuda:0', 'gpu:0'; return 'cpu' or 'gpu'."""
    name = str(device).lower().split(":")[0]
    if name == "cpu":
        return "cpu"
    if name in ("gpu", "cuda"):
        return "gpu"
    raise ValueError(f"unknown device {device!r}: expected 'cpu' or 'gpu' (also accepted: 'cuda')")


def as_device_array(a, device):
    """Move an array to 'cpu' (NumPy) or 'gpu' (CuPy); a no-op when it is already there."""
    device = normalize_device(device)
    if device == "cpu":
        return cupy.asnumpy(a) if is_gpu_array(a) else np.asarray(a)
    if cupy is None:
        raise RuntimeError("device 'gpu' requested but CuPy is not installed: pip install 'minidl[gpu]'")
    if not gpu_available():
        raise RuntimeError("device 'gpu' requested but CuPy sees no CUDA device")
    return cupy.asarray(a)
