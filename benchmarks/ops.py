"""Op-level benchmarks: layer shapes taken from the zoo, minidl against torch.nn.functional.

An op is a dict: {"kind": ..., "x": [N, C, H, W], ...}. ``prepare(framework, op)`` builds its inputs and
returns a zero-argument callable that runs it once. Backward kinds time the backward pass alone (minidl:
the Function's ``backward`` on a saved forward; torch: ``autograd.grad`` with ``retain_graph``).
``gemm_shape(op)`` is the GEMM a conv's forward amounts to, for the fraction of the GEMM rate it reaches.
"""
import numpy as np

# name: (kind, x shape N x C x H x W, extra arguments). Batch sizes keep each call under ~0.5 s here.
CONV_LAYERS = {
    "lenet_c1":        ([64, 1, 32, 32], dict(K=6, k=5, stride=1, pad=0, groups=1)),
    "lenet_c3":        ([64, 6, 14, 14], dict(K=16, k=5, stride=1, pad=0, groups=1)),
    "resnet20_3x3":    ([128, 16, 32, 32], dict(K=16, k=3, stride=1, pad=1, groups=1)),
    "resnet50_3x3":    ([16, 64, 56, 56], dict(K=64, k=3, stride=1, pad=1, groups=1)),
    "resnet50_1x1":    ([16, 256, 56, 56], dict(K=64, k=1, stride=1, pad=0, groups=1)),
    "vgg_conv1_2":     ([4, 64, 224, 224], dict(K=64, k=3, stride=1, pad=1, groups=1)),
    "alexnet_conv1":   ([16, 3, 227, 227], dict(K=96, k=11, stride=4, pad=0, groups=1)),
    "googlenet_5x5":   ([16, 16, 28, 28], dict(K=32, k=5, stride=1, pad=2, groups=1)),
    "depthwise_3x3":   ([16, 128, 56, 56], dict(K=128, k=3, stride=1, pad=1, groups=128)),
}
OTHER_OPS = {
    "maxpool_2x2":     ("max_pool", [16, 64, 112, 112], dict(k=2, stride=2, pad=0)),
    "maxpool_3x3_s2":  ("max_pool", [16, 64, 112, 112], dict(k=3, stride=2, pad=1)),
    "avgpool_2x2":     ("avg_pool", [16, 64, 112, 112], dict(k=2, stride=2, pad=0)),
    "batch_norm":      ("batch_norm", [16, 64, 56, 56], {}),
    "lrn_alexnet":     ("lrn", [16, 96, 27, 27], dict(size=5)),
}
QUICK_CONV = {"lenet_c3": CONV_LAYERS["lenet_c3"], "tiny_3x3": ([4, 8, 16, 16], dict(K=8, k=3, stride=1, pad=1, groups=1))}
QUICK_OTHER = {"maxpool_2x2": ("max_pool", [4, 8, 16, 16], dict(k=2, stride=2, pad=0)),
               "batch_norm": ("batch_norm", [4, 8, 16, 16], {})}


def op_table(quick=False):
    """[(row name, op dict)]: conv forward and backward for every conv layer, then pooling, BN and LRN."""
    convs, others = (QUICK_CONV, QUICK_OTHER) if quick else (CONV_LAYERS, OTHER_OPS)
    rows = []
    for name, (x, args) in convs.items():
        rows.append((f"{name} fwd", dict(kind="conv", x=x, backward=False, **args)))
        rows.append((f"{name} bwd", dict(kind="conv", x=x, backward=True, **args)))
    for name, (kind, x, args) in others.items():
        rows.append((f"{name} fwd", dict(kind=kind, x=x, backward=False, **args)))
        rows.append((f"{name} bwd", dict(kind=kind, x=x, backward=True, **args)))
    return rows


def gemm_shape(op):
    """(G, M, K, P) of the conv's forward GEMM: G groups of (K/G, C/G*k*k) @ (C/G*k*k, N*OH*OW)."""
    N, C, H, W = op["x"]
    k, s, p, G = op["k"], op["stride"], op["pad"], op["groups"]
    OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    return G, op["K"] // G, C // G * k * k, N * OH * OW


def conv_flops(op):
    G, M, K, P = gemm_shape(op)
    return 2.0 * G * M * K * P


def _inputs(op, rng):
    x = rng.standard_normal(op["x"], dtype=np.float32)
    if op["kind"] == "conv":
        C = op["x"][1]
        w = rng.standard_normal((op["K"], C // op["groups"], op["k"], op["k"]), dtype=np.float32) * 0.1
        return x, w
    return x, None


def prepare(framework, op):
    rng = np.random.default_rng(0)
    x, w = _inputs(op, rng)
    return (_prepare_minidl if framework == "minidl" else _prepare_torch)(op, x, w)


def _minidl_function(op, x, w):
    """A maker of the minidl Function (each call is a new one) and its array inputs, so that backward can
    be timed alone."""
    from functools import partial
    from minidl.functions import conv as conv_module, normalization, pooling
    kind = op["kind"]
    if kind == "conv":
        s, p = op["stride"], op["pad"]
        return partial(conv_module.Conv2d, (s, s), (p, p), (1, 1), op["groups"]), (x, w)
    if kind in ("max_pool", "avg_pool"):
        window = ((op["k"],) * 2, (op["stride"],) * 2, (op["pad"],) * 2, False)
        if kind == "max_pool":
            return partial(pooling.MaxPool2d, *window), (x,)
        return partial(pooling.AvgPool2d, *window, True), (x,)
    if kind == "batch_norm":
        C = x.shape[1]
        return partial(normalization.BatchNormTrain, 1e-5), (x, np.ones(C, np.float32), np.zeros(C, np.float32))
    if kind == "lrn":
        return partial(normalization.LocalResponseNorm, op["size"], 1e-4, 0.75, 2.0), (x,)
    raise ValueError(f"unknown op kind {kind!r}")


def _prepare_minidl(op, x, w):
    import minidl
    make, arrays = _minidl_function(op, x, w)
    if not op["backward"]:
        tensors = [minidl.tensor(a) for a in arrays]
        return lambda: make()(*tensors)
    func = make()
    func.xp = np
    y = func.forward(*arrays)
    y = y[0] if isinstance(y, tuple) else y
    func.inputs = [minidl.tensor(a, requires_grad=True) for a in arrays]   # backward reads them (bias? gx?)
    gy = np.ones(y.shape, np.float32)
    return lambda: func.backward(gy)


def _prepare_torch(op, x, w):
    import torch
    import torch.nn.functional as F
    kind = op["kind"]
    xt = torch.from_numpy(x).requires_grad_(op["backward"])
    if kind == "conv":
        wt = torch.from_numpy(w).requires_grad_(op["backward"])
        run = lambda: F.conv2d(xt, wt, None, op["stride"], op["pad"], 1, op["groups"])  # noqa: E731
        inputs = (xt, wt)
    elif kind == "max_pool":
        run = lambda: F.max_pool2d(xt, op["k"], op["stride"], op["pad"])  # noqa: E731
        inputs = (xt,)
    elif kind == "avg_pool":
        run = lambda: F.avg_pool2d(xt, op["k"], op["stride"], op["pad"])  # noqa: E731
        inputs = (xt,)
    elif kind == "batch_norm":
        C = x.shape[1]
        g = torch.ones(C, requires_grad=op["backward"])
        b = torch.zeros(C, requires_grad=op["backward"])
        run = lambda: F.batch_norm(xt, None, None, g, b, training=True)  # noqa: E731
        inputs = (xt, g, b)
    elif kind == "lrn":
        run = lambda: F.local_response_norm(xt, op["size"], alpha=op["size"] * 1e-4, beta=0.75, k=2.0)  # noqa: E731
        inputs = (xt,)
    else:
        raise ValueError(f"unknown op kind {kind!r}")
    if not op["backward"]:
        def forward():
            with torch.no_grad():
                run()
        return forward
    y = run()
    gy = torch.ones_like(y)
    return lambda: torch.autograd.grad(y, inputs, gy, retain_graph=True)
