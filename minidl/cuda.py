"""minidl.cuda: the GPU, as ``torch.cuda`` presents it (devices, synchronisation, memory, TF32).

minidl runs on the GPU through CuPy (``pip install 'minidl[gpu]'``). This module imports without CuPy:
``is_available()`` and ``device_count()`` then report no GPU, and every call that needs one raises a
RuntimeError saying what is missing.

    >>> import minidl
    >>> if minidl.cuda.is_available():
    ...     model.to("gpu")
    ...     with minidl.cuda.device(0):
    ...         print(minidl.cuda.get_device_name(), minidl.cuda.memory_allocated())

TF32 (``set_tf32`` / ``tf32_enabled``). On Ampere and newer GPUs (compute capability 8.0+) cuBLAS can run
float32 GEMMs on the tensor cores in TF32: inputs rounded to a 10-bit mantissa, products accumulated in
float32, several times faster and with a relative error of about 1e-3 instead of 1e-6. minidl keeps it
OFF by default, so float32 results on the GPU match the CPU to float32 precision.

CuPy has two GEMM paths, and TF32 must be switched on both:
  - 2-D products (``Linear``) go through ``cublasGemmEx`` with a compute type that CuPy picks once, at the
    first float32 GEMM, from the environment variable ``CUPY_TF32``; setting the variable later changes
    nothing. ``set_tf32`` therefore also sets CuPy's cached compute type directly
    (``cupy._core._routines_linalg.set_compute_type``).
  - batched products (every convolution: ``W @ col`` per image and group) go through
    ``cublas{S,}gemm{Strided,}Batched{Ex,}``, which ignore ``CUPY_TF32`` and follow the math mode of the
    cuBLAS handle: ``set_tf32`` sets it (``cublasSetMathMode``, ``CUBLAS_TF32_TENSOR_OP_MATH``).
``set_tf32`` also writes ``CUPY_TF32`` (``"1"`` or ``"0"``), so a CuPy that is imported later, and child
processes, start the same way. cuBLAS handles belong to a device and a thread: the math mode is applied
to the current device's handle, again on ``set_device`` and ``device()``, and not in other threads (call
``set_tf32`` in each thread that runs GEMMs). Before CuPy is imported, or without a GPU, ``set_tf32`` only
records the choice in ``CUPY_TF32``. On GPUs older than compute capability 8.0 it has no effect. The
variable ``NVIDIA_TF32_OVERRIDE=0``, read by the CUDA libraries themselves, disables TF32 whatever this
switch says. Setting ``CUPY_TF32=1`` in the environment instead of calling ``set_tf32`` switches only the
2-D path, and ``tf32_enabled()`` (which reads the variable) then says True for it.
"""
import contextlib
import importlib
import os
import warnings

from minidl import backend

TF32_ENV = "CUPY_TF32"
INSTALL_HINT = "minidl.cuda: CuPy is not installed: pip install 'minidl[gpu]'"
NO_DEVICE = "minidl.cuda: CuPy sees no CUDA device"

_CUBLAS_DEFAULT_MATH = 0          # cublasMath_t values, from cublas_api.h (stable since CUDA 11)
_CUBLAS_TF32_TENSOR_OP_MATH = 3
_COMPUTE_TYPE_DEFAULT = 1         # CuPy's compute types (cupy/_core/_routines_linalg.pxd)
_COMPUTE_TYPE_TF32 = 7


def _cupy():
    """The cupy module, or a RuntimeError saying how to install it."""
    if backend.cupy is None:
        raise RuntimeError(INSTALL_HINT)
    return backend.cupy


def _device_cupy():
    """The cupy module when it sees at least one device, else a RuntimeError saying what is missing."""
    cupy = _cupy()
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, or a CuPy built for another CUDA
        raise RuntimeError(f"{NO_DEVICE} ({type(error).__name__}: {error})") from None
    if count == 0:
        raise RuntimeError(NO_DEVICE)
    return cupy


def _index(device, op):
    """A device number in range (None: the current device)."""
    cupy = _device_cupy()
    if device is None:
        return cupy.cuda.runtime.getDevice()
    if isinstance(device, str):   # 'gpu:1', 'cuda:1', 'cuda'
        name, _, number = device.partition(":")
        if backend.normalize_device(name) != "gpu":
            raise ValueError(f"{op}: expected a GPU device, got {device!r}")
        device = int(number) if number else cupy.cuda.runtime.getDevice()
    if not isinstance(device, int) or isinstance(device, bool):
        raise TypeError(f"{op}: expected a device number, got {device!r}")
    count = cupy.cuda.runtime.getDeviceCount()
    if not 0 <= device < count:
        raise ValueError(f"{op}: device {device} does not exist; CuPy sees {count} device(s), 0..{count - 1}")
    return device


def is_available():
    """True when CuPy is installed and sees at least one CUDA device."""
    return backend.gpu_available()


def device_count():
    """Number of CUDA devices CuPy sees (0 without CuPy or a driver)."""
    if backend.cupy is None:
        return 0
    try:
        return int(backend.cupy.cuda.runtime.getDeviceCount())
    except Exception:
        return 0


def current_device():
    """The number of the device that new GPU arrays are allocated on."""
    return _device_cupy().cuda.runtime.getDevice()


def set_device(device):
    """Make ``device`` (a number, or 'gpu:N') the current device of this thread."""
    cupy = _device_cupy()
    cupy.cuda.Device(_index(device, "set_device")).use()
    _apply_tf32(cupy)


@contextlib.contextmanager
def device(device):
    """``with minidl.cuda.device(1): ...``: run the block with ``device`` current, then restore the previous one."""
    previous = current_device()
    set_device(device)
    try:
        yield
    finally:
        set_device(previous)


def get_device_name(device=None):
    """The device's marketing name, e.g. 'NVIDIA H100 80GB HBM3'."""
    cupy = _device_cupy()
    name = cupy.cuda.runtime.getDeviceProperties(_index(device, "get_device_name"))["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def get_device_capability(device=None):
    """(major, minor) compute capability: (9, 0) for Hopper, (8, 0) for the A100."""
    cupy = _device_cupy()
    capability = str(cupy.cuda.Device(_index(device, "get_device_capability")).compute_capability)
    return int(capability[:-1]), int(capability[-1])


def synchronize(device=None):
    """Wait until every kernel queued on ``device`` has finished (GPU work is asynchronous: time after this)."""
    cupy = _device_cupy()
    cupy.cuda.Device(_index(device, "synchronize")).synchronize()


def memory_allocated():
    """Bytes of GPU memory held by live arrays (CuPy's default memory pool, current device)."""
    return int(_device_cupy().get_default_memory_pool().used_bytes())


def memory_reserved():
    """Bytes the memory pool holds from the driver, in use or cached for reuse."""
    return int(_device_cupy().get_default_memory_pool().total_bytes())


def mem_get_info(device=None):
    """(free, total) bytes of the device's memory, as the driver reports them."""
    cupy = _device_cupy()
    with cupy.cuda.Device(_index(device, "mem_get_info")):
        free, total = cupy.cuda.runtime.memGetInfo()
    return int(free), int(total)


def empty_cache():
    """Return the memory pool's cached, unused blocks to the driver."""
    cupy = _device_cupy()
    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()


def versions():
    """Versions that matter for a GPU report: CuPy, the CUDA runtime and driver, cuBLAS, and the device."""
    cupy = _device_cupy()
    runtime = cupy.cuda.runtime

    def cuda_version(number):  # 13000 -> '13.0'
        return f"{number // 1000}.{number % 1000 // 10}"

    info = {"cupy": cupy.__version__, "cuda_runtime": cuda_version(runtime.runtimeGetVersion()),
            "cuda_driver": cuda_version(runtime.driverGetVersion()), "device": get_device_name(),
            "compute_capability": "%d.%d" % get_device_capability(), "device_count": device_count()}
    try:
        from cupy_backends.cuda.libs import cublas
        info["cublas"] = str(cublas.getVersion(cupy.cuda.device.get_cublas_handle()))
    except Exception:  # optional detail
        pass
    return info


def _parse_flag(value):
    """CuPy's reading of CUPY_TF32: an integer > 0 means on; unset or '' means off."""
    value = (value or "").strip()
    if not value:
        return False
    try:
        return int(value) > 0
    except ValueError:
        raise ValueError(f"minidl.cuda: {TF32_ENV}={value!r} is not an integer (CuPy reads it as one): "
                         f"use 0 or 1, or minidl.cuda.set_tf32()") from None


def tf32_enabled():
    """True when float32 GEMMs may run in TF32 (the switch set by :func:`set_tf32`, else ``CUPY_TF32``).

    Off by default. Reports the switch, not the hardware: on a GPU older than compute capability 8.0 the
    GEMMs stay float32 either way.
    """
    return _parse_flag(os.environ.get(TF32_ENV))


def set_tf32(enabled):
    """Allow (``True``) or forbid (``False``, the default) TF32 tensor-core math in float32 GEMMs.

    Takes effect at once, before or after the first GEMM, on both of CuPy's GEMM paths (see the module
    docstring); also sets ``CUPY_TF32`` for CuPy imports and child processes to come. Returns the previous
    setting, so ``previous = set_tf32(True); ...; set_tf32(previous)`` restores it.
    """
    if not isinstance(enabled, (bool, int)) or enabled not in (0, 1):
        raise TypeError(f"set_tf32: expected True or False, got {enabled!r}")
    previous = tf32_enabled()
    os.environ[TF32_ENV] = "1" if enabled else "0"
    if device_count() > 0:   # without CuPy or a GPU, the variable is all a later CuPy will read
        _apply_tf32(backend.cupy)
    return previous


def _apply_tf32(cupy):
    """Put the TF32 switch into CuPy's cached compute type and the current device's cuBLAS handle."""
    import numpy as np

    enabled = tf32_enabled()
    if enabled and int(str(cupy.cuda.Device().compute_capability)) < 80:
        warnings.warn("minidl.cuda.set_tf32: TF32 needs compute capability 8.0 or newer; this GPU's "
                      "float32 GEMMs stay float32", RuntimeWarning, stacklevel=3)
        return
    linalg = importlib.import_module("cupy._core._routines_linalg")
    cublas = importlib.import_module("cupy_backends.cuda.libs.cublas")
    compute_type = getattr(linalg, "COMPUTE_TYPE_TF32" if enabled else "COMPUTE_TYPE_DEFAULT",
                           _COMPUTE_TYPE_TF32 if enabled else _COMPUTE_TYPE_DEFAULT)
    linalg.set_compute_type(np.float32, compute_type)   # also covers complex64: one slot for 'f' and 'F'
    math_mode = getattr(cublas, "CUBLAS_TF32_TENSOR_OP_MATH" if enabled else "CUBLAS_DEFAULT_MATH",
                        _CUBLAS_TF32_TENSOR_OP_MATH if enabled else _CUBLAS_DEFAULT_MATH)
    cublas.setMathMode(cupy.cuda.device.get_cublas_handle(), math_mode)


__all__ = ["INSTALL_HINT", "NO_DEVICE", "TF32_ENV", "current_device", "device", "device_count", "empty_cache",
           "get_device_capability", "get_device_name", "is_available", "mem_get_info", "memory_allocated",
           "memory_reserved", "set_device", "set_tf32", "synchronize", "tf32_enabled", "versions"]
