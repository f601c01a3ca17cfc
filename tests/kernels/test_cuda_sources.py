"""The CUDA sources (kernels/cuda/*.cu), checked on a machine without a GPU.

1. nvcc compiles every .cu file for sm_90 with explicit float and double instances of each kernel, built
   from gpu.SIGNATURES (so the table gpu.py launches with must match the sources); any error or warning,
   or a register spill reported by ptxas, fails. Skipped if nvcc is not installed.
2. Every kernel not in gpu.DEVICE_ONLY (all barrier-free grid-stride kernels) is compiled by g++ with
   kernels/cuda/host_shim.h and run on the CPU: the functions of kernels/gpu.py run unchanged with NumPy
   standing in for CuPy and a RawModule that builds a shared library and calls it through ctypes. Each
   launch checks its arguments against the C signature (exact scalar types, dtypes, contiguity) and runs
   every (block, thread) in turn. The cases and the comparison with the reference are those of
   test_gpu.py. Skipped if g++ is not installed. Build artefacts go to pytest's temporary directory.
"""
import ctypes
import hashlib
import inspect
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from minidl import kernels
from minidl.kernels import gpu
from minidl.kernels import reference as ref
from tests.kernels.test_gpu import (DTYPES, assert_matches_reference, kernel_calls, nan_and_infinity_case,
                                    oversized_ceil_mode_cases)
from tests.kernels.test_reference import argument_errors

SOURCES = sorted({source for source, _ in gpu.SIGNATURES.values()})
NVCC = shutil.which("nvcc") or next((p for p in ["/usr/local/cuda/bin/nvcc"] if os.path.exists(p)), None)
GXX = shutil.which("g++")
C_TYPES = {"float": np.float32, "double": np.float64, "int": np.int32, "long long": np.int64}


def kernel_bodies(code):
    """{kernel name: source text from its name to its closing brace} for every __global__ function."""
    bodies = {}
    for match in re.finditer(r"__global__\s+void\s+(\w+)\s*\(", code):
        depth, i = 0, code.index("{", match.end())
        for i in range(i, len(code)):
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            if depth == 0:
                break
        bodies[match.group(1)] = code[match.start():i + 1]
    return bodies


def read_source(filename):
    with open(gpu.source_path(filename)) as f:
        return f.read()


def c_params(kernel, template_type):
    return [p.replace("T", template_type) for p in gpu.SIGNATURES[kernel][1]]


def instances(filename):
    """(kernel, template type) for every instance gpu.py asks NVRTC for in this file."""
    return [(k, t) for k, (source, _) in gpu.SIGNATURES.items() if source == filename
            for t in gpu.TEMPLATE_TYPES.values()]


@pytest.mark.parametrize("name", kernels.KERNELS)
def test_gpu_has_every_kernel_with_the_reference_signature(name):
    assert inspect.signature(getattr(gpu, name)) == inspect.signature(getattr(ref, name))


def test_signature_table_covers_every_kernel():
    declared = {}
    for filename in SOURCES:
        for kernel, body in kernel_bodies(read_source(filename)).items():
            declared[kernel] = filename
            needs_device = "__shared__" in body or "__syncthreads" in body
            assert needs_device == (kernel in gpu.DEVICE_ONLY), \
                f"{kernel}: uses shared memory or barriers: {needs_device}, but DEVICE_ONLY says otherwise"
    assert declared == {k: source for k, (source, _) in gpu.SIGNATURES.items()}
    assert sorted(os.listdir(gpu.SOURCE_DIR)) == sorted(SOURCES + ["host_shim.h"])


# nvcc ------------------------------------------------------------------------------------------------------

def ptxas_report(output):
    """{(kernel, 'f' or 'd'): (registers, spill store bytes, spill load bytes)} from ptxas -v output."""
    report = {}
    for block in output.split("Compiling entry function '")[1:]:
        mangled = block.split("'", 1)[0]
        length = re.match(r"_Z(\d+)", mangled)
        start = length.end()
        name = mangled[start:start + int(length.group(1))]
        template = mangled[start + int(length.group(1)) + 1]            # _Z<n><name>I<f|d>E...
        spills = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", block)
        registers = re.search(r"Used (\d+) registers", block)
        report[name, template] = (int(registers.group(1)), int(spills.group(1)), int(spills.group(2)))
    return report


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed (looked on PATH and in /usr/local/cuda/bin)")
@pytest.mark.parametrize("filename", SOURCES)
def test_nvcc_compiles_without_spills(filename, tmp_path):
    lines = [f'#include "{gpu.source_path(filename)}"']
    lines += [f"template __global__ void {k}<{t}>({', '.join(c_params(k, t))});" for k, t in instances(filename)]
    wrapper = tmp_path / f"instances_{filename}"
    wrapper.write_text("\n".join(lines) + "\n")
    result = subprocess.run([NVCC, "-cubin", "-arch=sm_90", "--std=c++17", "-Xptxas", "-v", "-o",
                             str(tmp_path / "out.cubin"), str(wrapper)], capture_output=True, text=True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not re.search(r"\b(error|warning)\b", output, re.IGNORECASE), output
    report = ptxas_report(output)
    assert set(report) == {(k, t[0]) for k, t in instances(filename)}, output
    for (kernel, template), (registers, spill_stores, spill_loads) in sorted(report.items()):
        print(f"{kernel}<{template}>: {registers} registers, {spill_stores}/{spill_loads} bytes spilled")
        assert spill_stores == 0 and spill_loads == 0, f"{kernel}<{template}> spills registers:\n{output}"


# the host shim ---------------------------------------------------------------------------------------------

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


@pytest.fixture(scope="module")
def shim_build_dir(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ is not installed")
    return tmp_path_factory.mktemp("cuda_host_shim")


@pytest.fixture(params=[(3, 7), (1, 1), (4096, 256)], ids=["grid3-block7", "grid1-block1", "block256"])
def shim(request, shim_build_dir, monkeypatch):
    """(gpu module on the shim, to_device, to_host), launching blocks of BLOCK threads, at most MAX_BLOCKS.

    Odd sizes (at most 3 blocks of 7 threads, or a single thread) make every grid-stride loop wrap."""
    max_blocks, block = request.param
    monkeypatch.setattr(gpu, "cupy", NumpyAsCupy(shim_build_dir))
    monkeypatch.setattr(gpu, "BLOCK", block)
    monkeypatch.setattr(gpu, "MAX_BLOCKS", max_blocks)
    gpu._module.cache_clear()
    yield gpu, (lambda a: a), (lambda a: a)
    gpu._module.cache_clear()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(8))
def test_every_kernel_on_the_host_shim(shim, dtype, seed):
    for name, args, backward in kernel_calls(np.random.default_rng(seed), dtype):
        assert_matches_reference(*shim, name, args, backward)


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_nan_and_infinities_on_the_host_shim(shim, dtype):
    assert_matches_reference(*shim, *nan_and_infinity_case(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_kernels_larger_than_the_input_with_ceil_mode_on_the_host_shim(shim, dtype):
    for name, args, backward in oversized_ceil_mode_cases(dtype):
        assert_matches_reference(*shim, name, args, backward)


def test_argument_errors_on_the_host_shim(shim):
    for call, message in argument_errors(shim[0]):
        with pytest.raises(ValueError, match=re.escape(message)):
            call()


def test_im2col_is_bit_exact_and_col2im_is_its_adjoint(shim):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    col = shim[0].im2col(x, 3, 2, 2, 1, 1, 1, 2, 1)
    np.testing.assert_array_equal(col, ref.im2col(x, 3, 2, 2, 1, 1, 1, 2, 1))
    g = rng.standard_normal(col.shape)
    np.testing.assert_allclose(np.vdot(col, g), np.vdot(x, shim[0].col2im(g, 7, 6, 2, 1, 1, 1, 2, 1)), rtol=1e-12)
