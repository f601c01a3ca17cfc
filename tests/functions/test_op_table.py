"""The op case table (tests/functions/op_cases.py) through two of its checks: float64 gradients against finite
differences, and forward values, shapes, dtypes and gradients against PyTorch in float64 and float32 (skipped
without torch). The third, the GPU run, is tests/gpu/test_functions_gpu.py."""
import types
import warnings

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import gradcheck
from tests.functions.op_cases import ALIASES, CASES, CHECKS, cases_for, covered_names


def flat(out):
    """A call's result as a flat list (max's (values, indices), split's pieces, batch_norm's extra outputs)."""
    if isinstance(out, (tuple, list)) or type(out).__module__ == "torch.return_types":
        return [o for part in out for o in flat(part)]
    return [out]


def leaves(case, dtype, make):
    return [make(a, case.requires_grad(i, a)) for i, a in enumerate(case.arrays(dtype))]


@pytest.mark.parametrize("case", cases_for("gradcheck"), ids=lambda c: c.id)
def test_gradcheck(case):
    def call(*tensors):
        minidl.manual_seed(0)                  # random ops (dropout) draw the same mask on every call
        return flat(case.call(F, *tensors))
    inputs = leaves(case, np.float64, lambda a, rg: minidl.tensor(a, requires_grad=rg))
    differentiable = [k for k, out in enumerate(call(*inputs)) if out.requires_grad]
    assert differentiable, f"{case.id}: no output carries a gradient; skip gradcheck with the reason"
    # outputs without a gradient (indices, running statistics updated in place) are left out
    assert gradcheck(lambda *tensors: [call(*tensors)[k] for k in differentiable], inputs)


def _torch_namespace(torch):
    """torch's names with torch.nn.functional's first: ``M.relu``, ``M.conv2d``, ``M.cat``."""
    functional = {k: v for k, v in vars(torch.nn.functional).items() if not k.startswith("_")}
    return types.SimpleNamespace(**{**vars(torch), **functional})


def _run(case, module, dtype, make, to_numpy, cotangents):
    inputs = leaves(case, dtype, make)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        outs = flat(case.call(module, *inputs))
        floats = [o for o in outs if to_numpy(o).dtype.kind == "f" and o.requires_grad]
        if floats and cotangents is not None:
            total = sum((o * make(g.astype(dtype), False)).sum() for o, g in zip(floats, cotangents))
            total.backward()
    grads = [None if leaf.grad is None else to_numpy(leaf.grad) for leaf in inputs]
    return [to_numpy(o) for o in outs], grads


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case", cases_for("torch"), ids=lambda c: c.id)
def test_matches_pytorch(case, dtype):
    torch = pytest.importorskip("torch")
    T = _torch_namespace(torch)
    make_torch = lambda a, rg: torch.tensor(a, requires_grad=rg)   # noqa: E731
    to_numpy = lambda t: t.detach().numpy()                          # noqa: E731
    theirs, _ = _run(case, T, dtype, make_torch, to_numpy, None)
    cot_rng = np.random.default_rng(sum(map(ord, case.id)))
    cotangents = [cot_rng.standard_normal(o.shape) for o in theirs if o.dtype.kind == "f"]
    theirs, their_grads = _run(case, T, dtype, make_torch, to_numpy, cotangents)
    ours, our_grads = _run(case, F, dtype, lambda a, rg: minidl.tensor(a, requires_grad=rg), lambda t: t.numpy(),
                           cotangents)
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    assert len(ours) == len(theirs), f"{case.id}: {len(ours)} outputs, PyTorch gives {len(theirs)}"
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f"{case.id}: output {k} has shape {a.shape}, PyTorch {b.shape}"
        assert a.dtype == b.dtype, f"{case.id}: output {k} has dtype {a.dtype}, PyTorch {b.dtype}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"{case.id} output {k}")
    for k, (a, b) in enumerate(zip(our_grads, their_grads)):
        assert (a is None) == (b is None), \
            f"{case.id}: gradient of input {k}: ours {a is not None}, theirs {b is not None}"
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10, equal_nan=True,
                                       err_msg=f"{case.id} gradient of input {k}")


def test_every_public_function_has_a_case():
    assert set(F.__all__) - set(ALIASES) - covered_names() == set()


def test_every_function_pytorch_has_is_compared_with_it():
    torch = pytest.importorskip("torch")
    theirs = {n for n in set(F.__all__) - set(ALIASES) if hasattr(torch.nn.functional, n) or hasattr(torch, n)}
    assert theirs - covered_names(cases_for("torch")) == set()


def test_every_case_runs_a_check_and_says_why_it_skips_the_others():
    assert len({c.id for c in CASES}) == len(CASES), "case ids repeat"
    for c in CASES:
        assert set(c.skip) <= set(CHECKS), f"{c.id}: unknown check in skip: {set(c.skip) - set(CHECKS)}"
        assert all(isinstance(why, str) and why for why in c.skip.values()), f"{c.id}: a skip without a reason"
        assert len(c.skip) < len(CHECKS), f"{c.id} runs no check"
