"""Every op of minidl.functions, forward and backward, on the GPU against the CPU (float32 and float64).

The cases are the op table's (tests/functions/op_cases.py, check "gpu") and the comparison is harness.py's;
tests/gpu/test_harness_on_cpu.py runs both on the CPU in CI. Skipped without CuPy and a CUDA device.
"""
import numpy as np
import pytest

from minidl.backend import gpu_available
from tests.functions.op_cases import cases_for
from tests.gpu.harness import assert_case_same_on_devices

pytestmark = pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA device")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("case", cases_for("gpu"), ids=lambda c: c.id)
def test_op_matches_cpu(case, dtype):
    assert_case_same_on_devices(case, dtype, "gpu")


def test_outputs_stay_on_the_gpu():
    import minidl
    import minidl.functions as F
    x = minidl.randn(2, 3, 8, 8, device="gpu", requires_grad=True)
    w = minidl.randn(4, 3, 3, 3, device="gpu", requires_grad=True)
    y = F.max_pool2d(F.relu(F.conv2d(x, w, padding=1)), 2)
    y.sum().backward()
    assert y.device == x.grad.device == w.grad.device == "gpu"
