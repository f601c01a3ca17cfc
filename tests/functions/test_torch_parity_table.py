"""The PyTorch-parity table: one row per public op and Tensor method, run forward and backward in float64 and
float32 against PyTorch, the same call written once for both libraries (so argument names, defaults, return
types and dtypes are compared along with values), on inputs that include the boundary values: 0, negative
bases, +-inf, huge logits, empty tensors, ties. Modelled on tinygrad's ``helper_test_op``. Skipped without torch.

A row is (id, call, inputs, grads): ``call(M, *tensors)`` is run with M = ``minidl.functions`` and with
M = torch (``torch.nn.functional`` names first); ``grads`` lists the inputs that require grad (None: every
floating-point input).
"""
import types
import warnings

import numpy as np
import pytest

import minidl
import minidl.functions as F

torch = pytest.importorskip("torch")
T = types.SimpleNamespace(**{**vars(torch), **{k: v for k, v in vars(torch.nn.functional).items()
                                              if not k.startswith("_")}})
rng = np.random.default_rng(12)
INF = np.inf


def normal(*shape, scale=1.0):
    return rng.standard_normal(shape) * scale


def positive(*shape):
    return rng.uniform(0.5, 2.0, shape)


def distinct(*shape):
    return rng.permutation(np.prod(shape, dtype=int)).reshape(shape) * 0.37 - 3.0


def edges(*extra):
    """The usual boundary values, plus ``extra``."""
    return np.array([0.0, -0.0, 1.0, -1.0, 2.5, -3.5, 1e-30, -1e-30, 50.0, -50.0, *extra])


LABELS = np.array([0, 3, 1, 4, 4, 2])
WITH_IGNORED = np.array([0, -100, 1, 4, -100, 2])

ROWS = [
    # arithmetic and its edges
    ("add-broadcast", lambda M, a, b: a + b, [normal(3, 1, 4), normal(5, 1)], None),
    ("sub-scalar", lambda M, a: 2.0 - a, [normal(3, 4)], None),
    ("mul-inf", lambda M, a, b: a * b, [np.array([INF, -INF, 2.0, 0.5]), np.array([2.0, 3.0, INF, -1.0])], None),
    ("div-zero", lambda M, a, b: a / b, [np.array([1.0, -1.0, 0.0, 3.0]), np.array([0.0, 0.0, 2.0, -INF])], None),
    ("neg", lambda M, a: -a, [normal(3, 4)], None),
    ("pow-zero-exponent", lambda M, a: a ** 0, [edges()], None),
    ("pow-int-negative-base", lambda M, a: a ** 3, [edges(INF, -INF)], None),
    ("pow-square-at-zero", lambda M, a: a ** 2, [edges()], None),
    ("pow-half", lambda M, a: a ** 0.5, [np.array([0.0, 0.25, 4.0, INF])], None),
    ("pow-negative-exponent", lambda M, a: a ** -2, [np.array([0.0, 0.5, -2.0, INF])], None),
    ("pow-tensor", lambda M, a, b: a ** b, [positive(3, 4), normal(4)], None),
    ("pow-tensor-zero-base", lambda M, a, b: a ** b, [np.array([0.0, 0.0, 0.0, 2.0]), np.array([2.0, 0.0, 1.0, 0.0])],
     None),
    ("rpow", lambda M, a: 2.0 ** a, [normal(3, 4)], None),
    ("exp", lambda M, a: M.exp(a), [edges(-INF, 700.0)], None),
    ("log", lambda M, a: M.log(a), [np.array([0.0, 1e-30, 1.0, 7.5, INF])], None),
    ("sqrt", lambda M, a: M.sqrt(a), [np.array([0.0, 1e-30, 1.0, 7.5, INF])], None),
    ("abs", lambda M, a: M.abs(a), [edges(INF, -INF)], None),
    ("matmul", lambda M, a, b: a @ b, [normal(3, 4), normal(4, 2)], None),
    ("matmul-batched", lambda M, a, b: M.matmul(a, b), [normal(2, 1, 3, 4), normal(5, 4, 2)], None),
    ("matmul-vector", lambda M, a, b: a @ b, [normal(4), normal(4, 3)], None),
    ("matmul-empty", lambda M, a, b: a @ b, [normal(0, 3), normal(3, 2)], None),
    # reductions, with torch's dim / keepdim and the empty cases
    ("sum-all", lambda M, a: a.sum(), [normal(3, 4)], None),
    ("sum-dim-keepdim", lambda M, a: a.sum(1, keepdim=True), [normal(3, 4, 2)], None),
    ("sum-dims", lambda M, a: M.sum(a, dim=(0, 2)), [normal(3, 4, 2)], None),
    ("sum-empty", lambda M, a: a.sum(dim=0), [normal(0, 3)], None),
    ("mean-dim", lambda M, a: a.mean(dim=-1), [normal(3, 4)], None),
    ("mean-empty", lambda M, a: a.mean(), [normal(0, 3)], None),
    ("mean-empty-dim", lambda M, a: M.mean(a, 0, keepdim=True), [normal(0, 3)], None),
    ("var", lambda M, a: a.var(dim=1), [normal(3, 5)], None),
    ("var-biased-keepdim", lambda M, a: M.var(a, dim=(0, 1), correction=0, keepdim=True), [normal(3, 5, 2)], None),
    ("var-unbiased-false", lambda M, a: a.var(unbiased=False), [normal(3, 5)], None),
    ("std", lambda M, a: M.std(a, 0), [normal(4, 3)], None),
    ("max-all", lambda M, a: a.max(), [distinct(3, 4)], None),
    ("max-all-ties", lambda M, a: M.max(a), [np.array([1.0, 3.0, 3.0, -2.0])], None),
    ("max-dim", lambda M, a: a.max(dim=1), [distinct(3, 4)], None),
    ("max-dim-positional-keepdim", lambda M, a: M.max(a, 0, True), [distinct(3, 4)], None),
    ("max-dim-index-0", lambda M, a: a.max(dim=1)[0], [distinct(3, 4)], None),
    ("min-dim", lambda M, a: M.min(a, dim=-1, keepdim=True), [distinct(2, 3, 4)], None),
    ("max-elementwise", lambda M, a, b: M.max(a, b), [np.array([1.0, 4.0, 2.0]), np.array([3.0, 2.0, 2.0])], None),
    ("maximum-ties", lambda M, a, b: M.maximum(a, b), [np.array([1.0, 4.0, 2.0]), np.array([3.0, 2.0, 2.0])], None),
    ("minimum-broadcast", lambda M, a, b: M.minimum(a, b), [distinct(3, 4), distinct(4)], None),
    ("amax", lambda M, a: M.amax(a, dim=(0, 2)), [distinct(3, 4, 2)], None),
    ("amax-ties", lambda M, a: a.amax(), [np.array([[1.0, 3.0], [3.0, 0.0]])], None),
    ("amin-dim", lambda M, a: a.amin(1, keepdim=True), [distinct(3, 4)], None),
    ("argmax", lambda M, a: a.argmax(), [distinct(3, 4)], ()),
    ("argmax-dim", lambda M, a: M.argmax(a, dim=1, keepdim=True), [distinct(3, 4)], ()),
    ("argmin-dim", lambda M, a: a.argmin(dim=0), [distinct(3, 4)], ()),
    ("clamp", lambda M, a: M.clamp(a, -1.0, 1.0), [edges(INF, -INF)], None),
    ("clamp-min", lambda M, a: a.clamp(min=0.5), [normal(3, 4)], None),
    # shapes
    ("transpose-2d", lambda M, a: a.transpose(0, 1), [normal(2, 3)], None),
    ("transpose-2d-negative", lambda M, a: a.transpose(-2, -1), [normal(2, 3)], None),
    ("transpose-same", lambda M, a: a.transpose(0, 0), [normal(2, 3)], None),
    ("transpose-4d", lambda M, a: M.transpose(a, 1, -1), [normal(2, 3, 4, 5)], None),
    ("T", lambda M, a: a.T, [normal(2, 3)], None),
    ("permute", lambda M, a: a.permute(2, 0, 1), [normal(2, 3, 4)], None),
    ("permute-function", lambda M, a: M.permute(a, (0, 2, 1)), [normal(2, 3, 4)], None),
    ("reshape", lambda M, a: a.reshape(4, -1), [normal(2, 3, 4)], None),
    ("view", lambda M, a: a.view(6, 4), [normal(2, 3, 4)], None),
    ("flatten", lambda M, a: M.flatten(a, 1), [normal(2, 3, 4)], None),
    ("unsqueeze", lambda M, a: a.unsqueeze(-1), [normal(2, 3)], None),
    ("squeeze-all", lambda M, a: a.squeeze(), [normal(1, 3, 1)], None),
    ("squeeze-dim", lambda M, a: M.squeeze(a, 0), [normal(1, 3, 1)], None),
    ("squeeze-dim-not-one", lambda M, a: a.squeeze(1), [normal(1, 3, 1)], None),
    ("cat-default-dim", lambda M, a, b: M.cat([a, b]), [normal(2, 3), normal(4, 3)], None),
    ("cat-dim", lambda M, a, b: M.cat((a, b), dim=1), [normal(2, 3), normal(2, 1)], None),
    ("cat-empty", lambda M, a, b: M.cat([a, b]), [normal(0, 3), normal(2, 3)], None),
    ("concat", lambda M, a, b: M.concat([a, b], dim=-1), [normal(2, 3), normal(2, 1)], None),
    ("split-default-dim", lambda M, a: M.split(a, 2), [normal(5, 3)], None),
    ("split-sections-dim", lambda M, a: M.split(a, [1, 2], dim=1), [normal(2, 3)], None),
    ("pad-last-dim", lambda M, a: M.pad(a, (1, 2)), [normal(2, 3, 4)], None),
    ("pad-two-dims-value", lambda M, a: M.pad(a, (1, 1, 2, 0), value=0.5), [normal(2, 3, 4)], None),
    ("pad-channels", lambda M, a: M.pad(a, (0, 0, 0, 0, 0, 2)), [normal(1, 2, 3, 3)], None),
    ("getitem", lambda M, a: a[1:, ::2], [normal(3, 4)], None),
    ("clone", lambda M, a: a.clone() * 2, [normal(3, 4)], None),
    ("method-expand", lambda M, a: a.expand(2, -1, 4), [normal(3, 1)], None),
    ("method-contiguous", lambda M, a: a.T.contiguous() * 3, [normal(3, 4)], None),
    ("method-add-alpha", lambda M, a, b: a.add(b, alpha=2.0).sub(b).mul(a).div(b.abs() + 1), [normal(3, 4), normal(4)],
     None),
    ("method-matmul-neg", lambda M, a, b: a.matmul(b).neg(), [normal(3, 4), normal(4, 2)], None),
    ("method-any-all", lambda M, a: (a.any(), a.all(dim=1), a.any(1, keepdim=True)), [np.array([[0.0, 1.0], [0.0, 0.0]])],
     ()),
    # activations, at extreme logits
    ("relu", lambda M, a: M.relu(a), [edges(INF, -INF)], None),
    ("leaky_relu", lambda M, a: M.leaky_relu(a, negative_slope=0.2), [edges(INF, -INF)], None),
    ("leaky_relu-default", lambda M, a: M.leaky_relu(a), [normal(3, 4)], None),
    ("tanh", lambda M, a: M.tanh(a), [edges(INF, -INF, 20.0)], None),
    ("sigmoid", lambda M, a: M.sigmoid(a), [edges(INF, -INF, -20.0, -15.0, -88.0, 30.0)], None),
    ("log-of-sigmoid", lambda M, a: M.log(M.sigmoid(a)), [np.array([-20.0, -15.0, -5.0, 0.0, 10.0])], None),
    ("logsigmoid", lambda M, a: M.logsigmoid(a), [edges(INF, -INF, -1000.0, 1000.0)], None),
    ("softplus", lambda M, a: M.softplus(a), [edges(INF, -INF, 19.0, 21.0, -1000.0)], None),
    ("softplus-beta", lambda M, a: M.softplus(a, beta=2.0, threshold=5.0), [edges(2.4, 2.6)], None),
    ("softmax", lambda M, a: M.softmax(a, dim=1), [normal(3, 5) * 30], None),
    ("softmax-huge", lambda M, a: M.softmax(a, dim=-1), [np.array([[1000.0, 0.0, -1000.0]])], None),
    ("softmax-dim0", lambda M, a: M.softmax(a, 0), [normal(3, 5)], None),
    ("log_softmax", lambda M, a: M.log_softmax(a, dim=1), [np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])],
     None),
    # losses
    ("cross_entropy", lambda M, x: M.cross_entropy(x, LT()), [normal(6, 5)], None),
    ("cross_entropy-weight", lambda M, x, w: M.cross_entropy(x, LT(), w), [normal(6, 5), positive(5)], (0,)),
    ("cross_entropy-ignore_index", lambda M, x: M.cross_entropy(x, LT(WITH_IGNORED), ignore_index=-100),
     [normal(6, 5)], None),
    ("cross_entropy-weight-ignore-smoothing",
     lambda M, x, w: M.cross_entropy(x, LT(WITH_IGNORED), weight=w, label_smoothing=0.3), [normal(6, 5), positive(5)],
     (0,)),
    ("cross_entropy-sum", lambda M, x: M.cross_entropy(x, LT(), reduction="sum"), [normal(6, 5)], None),
    ("cross_entropy-none-weight", lambda M, x, w: M.cross_entropy(x, LT(WITH_IGNORED), w, reduction="none"),
     [normal(6, 5), positive(5)], (0,)),
    ("cross_entropy-spatial", lambda M, x: M.cross_entropy(x, LT(np.array([[[0, 2], [1, 1]], [[2, 0], [0, 1]]]))),
     [normal(2, 3, 2, 2)], None),
    ("cross_entropy-probabilities", lambda M, x, q: M.cross_entropy(x, q, label_smoothing=0.1),
     [normal(4, 5), positive(4, 5) / 5], None),
    ("cross_entropy-1d", lambda M, x: M.cross_entropy(x, LT(np.array(2))), [normal(5)], None),
    ("cross_entropy-huge-logits", lambda M, x: M.cross_entropy(x, LT(np.array([0, 1]))),
     [np.array([[1000.0, -1000.0, 0.0], [-1000.0, 1000.0, 5.0]])], None),
    ("mse_loss", lambda M, a, b: M.mse_loss(a, b), [normal(3, 4), normal(3, 4)], None),
    ("mse_loss-sum", lambda M, a, b: M.mse_loss(a, b, reduction="sum"), [normal(3, 4), normal(3, 4)], None),
    # layers as functions
    ("linear", lambda M, x, w, b: M.linear(x, w, b), [normal(4, 5), normal(3, 5), normal(3)], None),
    ("linear-no-bias", lambda M, x, w: M.linear(x, w), [normal(2, 4, 5), normal(3, 5)], None),
    ("conv2d", lambda M, x, w, b: M.conv2d(x, w, b, stride=2, padding=1), [normal(2, 3, 7, 7), normal(4, 3, 3, 3),
                                                                          normal(4)], None),
    ("conv2d-groups-dilation", lambda M, x, w: M.conv2d(x, w, padding=2, dilation=2, groups=2),
     [normal(1, 4, 6, 6), normal(4, 2, 3, 3)], None),
    ("max_pool2d", lambda M, x: M.max_pool2d(x, 3, 2, padding=1), [distinct(2, 2, 7, 6)], None),
    ("avg_pool2d", lambda M, x: M.avg_pool2d(x, 2), [normal(2, 2, 6, 6)], None),
    ("adaptive_avg_pool2d", lambda M, x: M.adaptive_avg_pool2d(x, (2, 3)), [normal(2, 2, 5, 7)], None),
    ("batch_norm-train", lambda M, x, w, b: M.batch_norm(x, None, None, w, b, training=True),
     [normal(4, 3, 2, 2), positive(3), normal(3)], None),
    ("batch_norm-eval", lambda M, x, m, v: M.batch_norm(x, m, v), [normal(4, 3, 2, 2), normal(3), positive(3)], (0,)),
    ("local_response_norm-defaults", lambda M, x: M.local_response_norm(x, 3), [normal(2, 5, 3, 3) * 10], None),
    ("dropout-off", lambda M, x: M.dropout(x, 0.5, training=False), [normal(3, 4)], None),
]


def LT(labels=LABELS):
    """Integer class labels, as a tensor of whichever library ``_BACKEND`` names."""
    return _BACKEND["label"](labels)


_BACKEND = {}


def _leaves(arrays, dtype, grads, make):
    leaves = []
    for i, a in enumerate(arrays):
        a = np.asarray(a)
        floating = a.dtype.kind == "f"
        wanted = floating and (grads is None or i in grads)
        leaves.append(make(a.astype(dtype) if floating else a, wanted))
    return leaves


def _flat(out):
    return list(out) if isinstance(out, (tuple, list)) or type(out).__module__ == "torch.return_types" else [out]


def _run(call, module, arrays, dtype, grads, make, to_numpy, cotangents):
    leaves = _leaves(arrays, dtype, grads, make)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        outs = _flat(call(module, *leaves))
        floats = [o for o in outs if to_numpy(o).dtype.kind == "f" and o.requires_grad]
        if floats and cotangents is not None:
            total = sum((o * make(g.astype(dtype), False)).sum() for o, g in zip(floats, cotangents))
            total.backward()
    grads_out = [None if leaf.grad is None else to_numpy(leaf.grad) for leaf in leaves]
    return [to_numpy(o) for o in outs], grads_out


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("case_id, call, arrays, grads", ROWS, ids=[r[0] for r in ROWS])
def test_matches_pytorch(case_id, call, arrays, grads, dtype):
    cot_rng = np.random.default_rng(abs(hash(case_id)) % 2**32)
    _BACKEND["label"] = lambda a: torch.tensor(a, dtype=torch.int64)
    theirs, their_grads = _run(call, T, arrays, dtype, grads, lambda a, rg: torch.tensor(a, requires_grad=rg),
                               lambda t: t.detach().numpy(), None)
    cotangents = [cot_rng.standard_normal(o.shape) for o in theirs if o.dtype.kind == "f"]
    theirs, their_grads = _run(call, T, arrays, dtype, grads, lambda a, rg: torch.tensor(a, requires_grad=rg),
                               lambda t: t.detach().numpy(), cotangents)
    _BACKEND["label"] = lambda a: minidl.tensor(a)
    ours, our_grads = _run(call, F, arrays, dtype, grads, lambda a, rg: minidl.tensor(a, requires_grad=rg),
                           lambda t: t.numpy(), cotangents)
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (2e-5, 2e-6)
    assert len(ours) == len(theirs), f"{case_id}: {len(ours)} outputs, PyTorch gives {len(theirs)}"
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a.shape == b.shape, f"{case_id}: output {k} has shape {a.shape}, PyTorch {b.shape}"
        assert a.dtype == b.dtype, f"{case_id}: output {k} has dtype {a.dtype}, PyTorch {b.dtype}"
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"{case_id} output {k}")
    for k, (a, b) in enumerate(zip(our_grads, their_grads)):
        assert (a is None) == (b is None), f"{case_id}: gradient of input {k}: ours {a is not None}, theirs {b is not None}"
        if a is not None:
            np.testing.assert_allclose(a, b, rtol=rtol * 10, atol=atol * 10, equal_nan=True,
                                       err_msg=f"{case_id} gradient of input {k}")


def test_the_table_covers_every_public_function():
    """Every op of ``minidl.functions`` (but the conv/pooling families, compared in test_torch_parity.py, and
    minidl's own helpers) has a row here."""
    covered = {r[0].split("-")[0] for r in ROWS}
    elsewhere = {"conv_transpose2d", "max_unpool2d", "global_avg_pool2d", "drop_path", "sum_to", "broadcast_to",
                 "getitem", "add", "sub", "mul", "div", "pow", "clip"}
    missing = set(F.__all__) - covered - elsewhere
    assert not missing, f"no parity row for {sorted(missing)}"


def _positional(fn):
    import inspect
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.default) for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]


# Where a positional slot of torch's is deliberately absent here (keyword-only instead, so that a positional call
# fails loudly rather than meaning something else), with the reason.
SIGNATURE_DIFFERENCES = {
    "F.cross_entropy": "torch's slots after weight are the deprecated size_average and reduce: keyword-only here",
    "F.mse_loss": "torch's third slot is the deprecated size_average: reduction is keyword-only here",
    "nn.MSELoss": "torch's first slots are the deprecated size_average and reduce: reduction is keyword-only here",
    "nn.CrossEntropyLoss": "as F.cross_entropy",
    "nn.LocalResponseNorm": "alpha_over_size is minidl's, after torch's four arguments",
}


def test_signatures_match_pytorch():
    """Every function, layer and optimizer that shares a name with PyTorch takes PyTorch's positional arguments
    in PyTorch's order with PyTorch's defaults (as far as it goes), so a positional call never means
    something else here. Torch functions without a Python signature (builtins) are compared in the table."""
    from minidl import nn, optim
    pairs = [(f"F.{n}", getattr(F, n), getattr(torch.nn.functional, n, None) or getattr(torch, n, None))
             for n in F.__all__]
    pairs += [(f"nn.{n}", getattr(nn, n), getattr(torch.nn, n, None)) for n in nn.__all__
              if n not in ("Module", "Parameter", "init")]
    pairs += [(f"optim.{n}", getattr(optim, n), getattr(torch.optim, n, None)) for n in ("SGD", "Adam", "AdamW")]
    compared, problems = 0, []
    for label, ours, theirs in pairs:
        mine, ref = _positional(ours), _positional(theirs) if theirs is not None else None
        if mine is None or ref is None or label in SIGNATURE_DIFFERENCES:
            continue
        compared += 1
        for (name, default), (tname, tdefault) in zip(mine, ref):
            if name != tname:
                problems.append(f"{label}: positional {name!r} where torch has {tname!r}")
                break
            if default is not tdefault and tdefault is not __import__("inspect").Parameter.empty and \
                    default is not __import__("inspect").Parameter.empty and default != tdefault:
                problems.append(f"{label}: {name}={default!r}, torch {tdefault!r}")
    assert compared >= 20
    assert not problems, "\n".join(problems)
