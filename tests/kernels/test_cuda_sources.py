"""The CUDA sources (kernels/cuda/*.cu), checked on a machine without a GPU.

1. nvcc compiles every .cu file for sm_90 with explicit float and double instances of each kernel, built
   from gpu.SIGNATURES (so the table gpu.py launches with must match the sources); any error or warning,
   or a register spill reported by ptxas, fails. Skipped if nvcc is not installed.
2. Every kernel not in gpu.DEVICE_ONLY (all barrier-free grid-stride kernels) is compiled by g++ with
   kernels/cuda/host_shim.h and run on the CPU (tests/kernels/host_shim.py): the functions of
   kernels/gpu.py run unchanged with NumPy standing in for CuPy. The ``backend`` fixture runs every test of
   test_kernels.py on it ("host_shim"); here, the other launch shapes and what only the shim can check.
   Skipped if g++ is not installed. Build artefacts go to pytest's temporary directory.
"""
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from minidl.kernels import gpu
from minidl.kernels import reference as ref
from tests.kernels import host_shim
from tests.kernels.helpers import DTYPES, Backend, assert_matches_reference, kernel_calls
from tests.kernels.host_shim import c_params

SOURCES = sorted({source for source, _ in gpu.SIGNATURES.values()})
NVCC = shutil.which("nvcc") or next((p for p in ["/usr/local/cuda/bin/nvcc"] if os.path.exists(p)), None)


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


def instances(filename):
    """(kernel, template type) for every instance gpu.py asks NVRTC for in this file."""
    return [(k, t) for k, (source, _) in gpu.SIGNATURES.items() if source == filename
            for t in gpu.TEMPLATE_TYPES.values()]


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

@pytest.fixture(params=[(1, 1), (4096, 256)], ids=["grid1-block1", "block256"])
def shim(request, shim_build_dir, monkeypatch):
    """The gpu module on the host shim with other launch shapes than the ``backend`` fixture's 3 blocks of
    7 threads: a single thread, and blocks of 256 as on the device."""
    max_blocks, block = request.param
    host_shim.use_host_shim(monkeypatch, shim_build_dir, max_blocks, block)
    yield Backend("host_shim", gpu)
    gpu._module.cache_clear()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_every_kernel_with_other_launch_shapes(shim, dtype, seed):
    for name, args, backward in kernel_calls(np.random.default_rng(seed), dtype):
        if hasattr(gpu, name):
            assert_matches_reference(shim, name, args, backward)


def test_im2col_is_bit_exact_and_col2im_is_its_adjoint(shim):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))
    col = shim.module.im2col(x, 3, 2, 2, 1, 1, 1, 2, 1)
    np.testing.assert_array_equal(col, ref.im2col(x, 3, 2, 2, 1, 1, 1, 2, 1))
    g = rng.standard_normal(col.shape)
    np.testing.assert_allclose(np.vdot(col, g), np.vdot(x, shim.module.col2im(g, 7, 6, 2, 1, 1, 1, 2, 1)), rtol=1e-12)
