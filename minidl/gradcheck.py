"""Numerical gradient checking: compare backward() with central finite differences, in float64.

Two checks, as the trusted systems do them:
- full: every input element x_i is nudged by +-eps and (L(x + eps e_i) - L(x - eps e_i)) / 2 eps is compared
  with the analytic dL/dx_i, where L = <u, f(x)> for a fixed random cotangent u (PyTorch's gradcheck checks
  every element too; projecting the output onto u keeps it to 2 forward passes per element);
- random directions (Chainer's check_backward, JAX's check_grads): for a random unit direction r over all
  inputs, (L(x + eps r) - L(x - eps r)) / 2 eps is compared with <dL/dx, r>. Cheap for large inputs.

    >>> x = minidl.randn(2, 3, 5, 5, dtype="float64", requires_grad=True)
    >>> w = minidl.randn(4, 3, 3, 3, dtype="float64", requires_grad=True)
    >>> gradcheck(lambda x, w: F.conv2d(x, w, padding=1), [x, w])
    True

:func:`gradgradcheck` checks second derivatives the same way, as PyTorch's: it runs ``gradcheck`` on the
function (x, v) -> v^T df/dx computed by ``minidl.grad(..., create_graph=True)``.
"""
import numpy as np

from minidl.autograd import enable_grad, no_grad
from minidl.backend import as_device_array
from minidl.tensor import Tensor, grad


class GradcheckError(AssertionError):
    """Raised when the analytic and numerical gradients disagree."""


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and o.dtype.kind == "f"]


def _projected(fn, inputs, cotangents):
    with no_grad():
        outs = _outputs(fn, inputs)
    return sum(float((as_device_array(o.data, "cpu").astype(np.float64) * u).sum()) for o, u in zip(outs, cotangents))


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, mode="auto", num_directions=4, max_full=2000,
              seed=0, raise_exception=True, _names=None):
    """Check the gradients of ``fn(*inputs)`` with respect to every input that requires grad.

    ``inputs`` are float64 Tensors (float32 differences are too coarse: PyTorch's gradcheck refuses them
    too). ``mode`` is "full" (every element), "random" (``num_directions`` random directions) or "auto"
    (full when the inputs have at most ``max_full`` elements in all). ``fn`` must be deterministic: reseed
    inside it if it draws random numbers (dropout). Returns True, or raises GradcheckError naming the
    input and the element with the worst error (returns False instead if ``raise_exception`` is False).
    The analytic gradients come from ``minidl.grad``: no input's ``.grad`` is touched, and an input need not
    be a leaf.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    checked = [i for i, x in enumerate(inputs) if x.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input requires grad; create them with requires_grad=True")
    for i in checked:
        if inputs[i].dtype != np.float64:
            raise TypeError(f"gradcheck: input {i} is {inputs[i].dtype}; finite differences need float64 "
                            "(minidl.randn(..., dtype='float64'))")
    rng = np.random.default_rng(seed)
    for i in checked:   # the checks nudge elements through a flat view, which needs C order
        if not inputs[i].data.flags.c_contiguous:
            inputs[i].data = inputs[i].xp.ascontiguousarray(inputs[i].data)
    with no_grad():
        outs = _outputs(fn, inputs)
    if not outs:
        raise ValueError("gradcheck: fn returned no floating-point tensor")
    cotangents = [rng.standard_normal(o.shape) for o in outs]

    outs = _outputs(fn, inputs)
    loss = None
    for o, u in zip(outs, cotangents):
        if not o.requires_grad:
            continue
        term = (o * Tensor(as_device_array(u, o.device).astype(o.dtype))).sum()
        loss = term if loss is None else loss + term
    # minidl.grad, not backward(): no input's .grad is touched, and an input that is not a leaf (x = t * 2)
    # gets its gradient too (its data is what the finite differences nudge).
    found = [None] * len(checked) if loss is None else grad(loss, [inputs[i] for i in checked], allow_unused=True)
    analytic = {i: np.zeros(inputs[i].shape) if g is None else as_device_array(g.data, "cpu").astype(np.float64)
                for i, g in zip(checked, found)}

    total = sum(inputs[i].numel() for i in checked)
    full = mode == "full" or (mode == "auto" and total <= max_full)
    if mode not in ("full", "random", "auto"):
        raise ValueError(f"gradcheck: mode must be 'full', 'random' or 'auto', got {mode!r}")
    worst = None
    if full:
        for i in checked:
            data = inputs[i].data
            flat = data.reshape(-1)  # a view: nudging it nudges the input
            for j in range(flat.size):
                orig = float(flat[j])
                flat[j] = orig + eps
                plus = _projected(fn, inputs, cotangents)
                flat[j] = orig - eps
                minus = _projected(fn, inputs, cotangents)
                flat[j] = orig
                numeric = (plus - minus) / (2 * eps)
                a = analytic[i].reshape(-1)[j]
                err = _excess(a, numeric, atol, rtol)
                if worst is None or err > worst[0]:
                    worst = (err, f"{_name(_names, i)} {tuple(inputs[i].shape)}, element "
                                  f"{tuple(int(k) for k in np.unravel_index(j, inputs[i].shape))}", a, numeric)
    else:
        for _ in range(num_directions):
            directions = {i: rng.standard_normal(inputs[i].shape) for i in checked}
            norm = np.sqrt(sum((d * d).sum() for d in directions.values()))
            originals = {i: inputs[i].data.copy() for i in checked}
            values = []
            for sign in (1, -1):
                for i in checked:
                    step = as_device_array(sign * eps * directions[i] / norm, inputs[i].device)
                    inputs[i].data[...] = originals[i] + step
                values.append(_projected(fn, inputs, cotangents))
            for i in checked:
                inputs[i].data[...] = originals[i]
            numeric = (values[0] - values[1]) / (2 * eps)
            a = sum(float((analytic[i] * directions[i]).sum()) for i in checked) / norm
            err = _excess(a, numeric, atol, rtol)
            if worst is None or err > worst[0]:
                worst = (err, "a random direction over all inputs", a, numeric)
    if worst[0] > 0:
        check = "gradgradcheck" if _names else "gradcheck"
        message = (f"{check} failed at {worst[1]}: analytic {worst[2]:.10g}, numerical {worst[3]:.10g} "
                   f"(|difference| {abs(worst[2] - worst[3]):.3g} > atol {atol} + rtol {rtol} * |numerical|)")
        if raise_exception:
            raise GradcheckError(message)
        return False
    return True


def _excess(analytic, numeric, atol, rtol):
    """How far |analytic - numeric| exceeds the tolerance; infinite where either is NaN (as torch.allclose,
    a NaN never matches: without this a NaN gradient compared False with everything and passed)."""
    err = abs(analytic - numeric) - (atol + rtol * abs(numeric))
    return np.inf if np.isnan(err) else err


def _name(names, i):
    return f"input {i}" if names is None else names[i]


def gradgradcheck(fn, inputs, grad_outputs=None, eps=1e-6, atol=1e-5, rtol=1e-3, mode="auto", num_directions=4,
                  max_full=2000, seed=0, raise_exception=True):
    """Check the second derivatives of ``fn(*inputs)``, as ``torch.autograd.gradgradcheck``.

    The first-order gradient g(x, v) = sum over outputs of v^T d output / dx, computed with
    ``minidl.grad(..., create_graph=True)``, is itself gradient-checked (see :func:`gradcheck` for ``mode``,
    the tolerances and the float64 requirement) with respect to the inputs (the second derivatives) and to
    the cotangents v (which checks the first-order backward_graph). ``grad_outputs`` are the v (float64
    Tensors that require grad, one per floating-point output); by default drawn at random from ``seed``.
    A failure names the input or cotangent and the element with the worst error. The checks evaluate ``fn``
    under ``no_grad()`` for the finite differences: an ``fn`` that itself takes a gradient (a third-order
    check) opens ``with minidl.enable_grad():`` inside.
    """
    inputs = [x if isinstance(x, Tensor) else Tensor(x) for x in inputs]
    if not any(x.requires_grad for x in inputs):
        raise ValueError("gradgradcheck: no input requires grad; create them with requires_grad=True")
    with no_grad():
        outs = _outputs(fn, inputs)
    if grad_outputs is None:
        rng = np.random.default_rng(seed + 1)
        grad_outputs = [Tensor(as_device_array(rng.standard_normal(o.shape), o.device).astype(o.dtype),
                               requires_grad=True) for o in outs]
    grad_outputs = [grad_outputs] if isinstance(grad_outputs, Tensor) else list(grad_outputs)
    if len(grad_outputs) != len(outs):
        raise ValueError(f"gradgradcheck: {len(grad_outputs)} grad_outputs for {len(outs)} floating-point outputs")
    n = len(inputs)

    def first_order(*args):
        xs, vs = args[:n], args[n:]
        with enable_grad():   # gradcheck evaluates under no_grad; the gradient needs a graph
            ys = _outputs(fn, xs)
            pairs = [(y, v) for y, v in zip(ys, vs) if y.requires_grad]
            wrt = [x for x in xs if x.requires_grad]
            if not pairs:
                return ()
            return grad([y for y, _ in pairs], wrt, [v for _, v in pairs], create_graph=True, allow_unused=True)

    # backward_graph is a second implementation of backward: its values must be backward's (checked on
    # its own by gradcheck), or a consistent but wrong backward_graph would pass the check below.
    if not gradcheck(fn, inputs, eps=eps, atol=atol, rtol=rtol, mode=mode, num_directions=num_directions,
                     max_full=max_full, seed=seed, raise_exception=raise_exception):
        return False
    wrt = [x for x in inputs if x.requires_grad]
    with enable_grad():
        ys = _outputs(fn, inputs)
        pairs = [(y, v) for y, v in zip(ys, grad_outputs) if y.requires_grad]
        plain = grad([y for y, _ in pairs], wrt, [v.detach() for _, v in pairs], allow_unused=True)
    recorded = first_order(*inputs, *grad_outputs)
    for k, (p, r) in enumerate(zip(plain, recorded)):
        p = np.zeros(wrt[k].shape) if p is None else as_device_array(p.data, "cpu")
        r = np.zeros(wrt[k].shape) if r is None else as_device_array(r.data, "cpu")
        bad = np.abs(p - r) > atol + rtol * np.abs(p)
        if bad.any():
            j = tuple(int(i) for i in np.argwhere(bad)[0])
            message = (f"gradgradcheck failed: the gradient of input {inputs.index(wrt[k])} at element {j} is "
                       f"{r[j]:.10g} with create_graph=True (backward_graph) and {p[j]:.10g} without (backward)")
            if raise_exception:
                raise GradcheckError(message)
            return False
    names = [f"input {i}" for i in range(n)] + [f"grad_output {k}" for k in range(len(grad_outputs))]

    return gradcheck(first_order, inputs + grad_outputs, eps=eps, atol=atol, rtol=rtol, mode=mode,
                     num_directions=num_directions, max_full=max_full, seed=seed,
                     raise_exception=raise_exception, _names=names)
