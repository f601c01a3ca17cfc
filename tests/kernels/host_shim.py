"""A stand-in for CuPy that runs kernels/gpu.py on the CPU: the CUDA sources compiled by g++ with
kernels/cuda/host_shim.h, NumPy arrays for device arrays. Used by the ``backend`` fixture ("host_shim")
and by test_cuda_sources.py. Each launch checks its arguments against the C signature (exact scalar types,
dtypes, contiguity) and runs every (block, thread) in turn. It cannot check races, shared memory, device
math-library rounding, NVRTC itself or performance."""
import ctypes
import hashlib
import os
import re
import shutil
import subprocess

import numpy as np

from minidl.kernels import gpu

GXX = shutil.which("g++")
C_TYPES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64}


def c_params(kernel, template_type):
    return [p.replace("T", template_type) for p in gpu.SIGNATURES[kernel][1]]


class ShimKernel:
    """One kernel instance in a g++-built library, called like a cupy.RawKernel: kernel(grid, block, args)."""

    def __init__(self, function, params):
        self.function, self.params = function, params

    def __call__(self, grid, block, args):
        assert len(grid) == 1 and len(block) == 1, "the kernels are launched 1-d"
        assert len(args) == len(self.params)
        converted = [ctypes.c_uint(int(grid[0])), ctypes.c_uint(int(block[0]))]
        for i, (param, arg) in enumerate(zip(self.params, args)):
            if param.endswith("*"):
                base = param.removeprefix("const ").rstrip("*").strip()
                assert isinstance(arg, np.ndarray) and arg.dtype == C_TYPES[base], \
                    f"argument {i}: {param} needs a {np.dtype(C_TYPES[base])} array, got {type(arg).__name__} " \
                    f"{getattr(arg, 'dtype', '')}"
                assert arg.flags.c_contiguous and (param.startswith("const") or arg.flags.writeable)
                converted.append(ctypes.c_void_p(arg.ctypes.data))
            else:   # CuPy passes exactly the C type of a NumPy scalar: a Python int would become long long
                assert type(arg) is C_TYPES[param], f"argument {i}: {param} needs {C_TYPES[param]}, got {type(arg)}"
                converted.append(np.ctypeslib.as_ctypes_type(C_TYPES[param])(arg))
        self.function(*converted)


class ShimModule:
    """Stands in for cupy.RawModule: compiles the source with g++ and host_shim.h, one launcher per instance."""

    def __init__(self, build_dir, code, name_expressions):
        self.params = {}
        launchers = []
        for expression in name_expressions:
            kernel, template = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
            params = c_params(kernel, template)
            self.params[expression] = params
            arguments = ", ".join(f"{p} a{i}" for i, p in enumerate(params))
            names = ", ".join(f"a{i}" for i in range(len(params)))
            launchers.append(f'extern "C" void launch_{kernel}_{template}(unsigned grid, unsigned block, '
                             f"{arguments}) {{ shim_launch(grid, block, {expression}, {names}); }}")
        text = code + "\n" + "\n".join(launchers) + "\n"
        stem = build_dir / hashlib.sha1(text.encode()).hexdigest()[:16]
        library = stem.with_suffix(".so")
        if not library.exists():
            stem.with_suffix(".cpp").write_text(text)
            subprocess.run([GXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wall", "-Werror",
                            "-include", os.path.join(gpu.SOURCE_DIR, "host_shim.h"), "-o", str(library),
                            str(stem.with_suffix(".cpp"))], check=True, capture_output=True, text=True)
        self.library = ctypes.CDLL(str(library))

    def get_function(self, expression):
        kernel, template = re.fullmatch(r"(\w+)<(\w+)>", expression).groups()
        function = getattr(self.library, f"launch_{kernel}_{template}")
        function.restype = None
        return ShimKernel(function, self.params[expression])


class NumpyAsCupy:
    """NumPy under CuPy's name, with ShimModule as RawModule: enough of CuPy for kernels/gpu.py."""

    def __init__(self, build_dir):
        self.build_dir = build_dir

    def RawModule(self, code, options, name_expressions):
        assert "--std=c++17" in options
        return ShimModule(self.build_dir, code, name_expressions)

    def __getattr__(self, name):
        return getattr(np, name)


def use_host_shim(monkeypatch, build_dir, max_blocks=3, block=7):
    """Make kernels/gpu.py launch on the host shim, at most ``max_blocks`` blocks of ``block`` threads
    (odd sizes make every grid-stride loop wrap); undone by ``monkeypatch``."""
    monkeypatch.setattr(gpu, "cupy", NumpyAsCupy(build_dir))
    monkeypatch.setattr(gpu, "BLOCK", block)
    monkeypatch.setattr(gpu, "MAX_BLOCKS", max_blocks)
    gpu._module.cache_clear()

