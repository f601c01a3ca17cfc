"""The GPU suites compare the device against the CPU: the CPU side runs im2col + GEMM for every convolution,
as the GPU does, rather than Winograd F(4x4, 3x3), whose float32 rounding (~1e-5 of a layer's scale, ~10x
im2col's) would add up over a deep model to a fair share of the 1e-4 the comparisons allow."""
import pytest


@pytest.fixture(autouse=True)
def _cpu_convolutions_by_im2col(monkeypatch):
    from minidl.kernels import conv
    monkeypatch.setattr(conv, "WINOGRAD", "off")
