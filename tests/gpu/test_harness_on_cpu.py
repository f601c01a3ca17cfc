"""The GPU tests' harness and case tables, run on the CPU with the CPU itself as the "device".

Runs in CI, so a mistake in a case or in the comparison shows up before a GPU session spends time on it
(the same idea as the host shim in tests/kernels/test_cuda_sources.py). It compares the CPU with itself,
so it checks the harness, not the GPU.
"""
import numpy as np
import pytest

import minidl.functions as F
from tests.functions.op_cases import ALIASES, cases_for, covered_names
from tests.gpu.harness import assert_case_same_on_devices, assert_model_same_on_devices, relative_error
from tests.gpu.model_cases import builder, input_for


def test_every_function_runs_on_the_gpu():
    assert set(F.__all__) - set(ALIASES) - covered_names(cases_for("gpu")) == set()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_every_case_runs_through_the_harness(dtype):
    for case in cases_for("gpu"):
        assert_case_same_on_devices(case, dtype, "cpu")


@pytest.mark.parametrize("name", ["lenet1", "lenet5", "resnet20", "fractalnet_cifar_small"])
def test_model_comparison_runs_through_the_harness(name):
    assert_model_same_on_devices(builder(name), input_for(name), "cpu")


def test_relative_error_scales_by_the_expected_array():
    assert relative_error(np.array([1.0, 101.0]), np.array([1.0, 100.0])) == pytest.approx(0.01)
    assert relative_error(np.zeros(0), np.zeros(0)) == 0.0
    assert relative_error(np.array([1e-6]), np.array([0.0]), floor=1e-3) == pytest.approx(1e-3)
