"""One or more cases for every op in ``minidl.functions.__all__``, for the device comparison in harness.py.

``cases(dtype)`` returns (case id, function of tensors, NumPy inputs, positions that require grad).
Max and min pooling/reductions get tie-free inputs, so the winner is the same on both devices.
"""
import numpy as np

import minidl
import minidl.functions as F
from tests.helpers import tie_free

ALIASES = {"concat": "cat", "clip": "clamp"}   # names in F.__all__ that are the same function as another one


def cases(dtype):
    rng = np.random.default_rng(0)

    def normal(*shape):
        return rng.standard_normal(shape).astype(dtype)

    def positive(*shape):
        return rng.uniform(0.5, 2.0, shape).astype(dtype)

    def distinct(*shape):
        return tie_free(shape, rng, scale=0.01).astype(dtype)

    x4 = normal(2, 4, 9, 8)
    y_pool, idx = F.max_pool2d(distinct(2, 3, 8, 8), 2, return_indices=True)   # switches for max_unpool2d
    pooled, switches = y_pool.numpy(), idx.numpy()
    labels = np.array([0, 3, 1, 4, 4], dtype=np.int64)
    running = [normal(4), positive(4)]

    table = [
        ("abs", F.abs, [normal(3, 5) + 0.1], None),
        ("add", F.add, [normal(3, 1, 5), normal(4, 1)], None),
        ("sub", F.sub, [normal(3, 5), normal(5)], None),
        ("mul", F.mul, [normal(2, 3, 5), normal(3, 1)], None),
        ("div", F.div, [normal(3, 5), positive(3, 5)], None),
        ("neg", F.neg, [normal(3, 5)], None),
        ("pow-constant", lambda x: F.pow(x, 3), [normal(3, 5)], None),
        ("pow-tensor", F.pow, [positive(3, 5), normal(5)], None),
        ("exp", F.exp, [normal(3, 5)], None),
        ("log", F.log, [positive(3, 5)], None),
        ("sqrt", F.sqrt, [positive(3, 5)], None),
        ("matmul-2d", F.matmul, [normal(6, 7), normal(7, 5)], None),
        ("matmul-batched-broadcast", F.matmul, [normal(3, 1, 4, 6), normal(2, 6, 5)], None),
        ("matmul-vector", F.matmul, [normal(6), normal(6, 5)], None),
        ("sum-all", F.sum, [normal(3, 4, 5)], None),
        ("sum-axes", lambda x: F.sum(x, axis=(0, 2), keepdims=True), [normal(3, 4, 5)], None),
        ("mean", lambda x: F.mean(x, axis=1), [normal(3, 4, 5)], None),
        ("max", lambda x: F.max(x, dim=1).values, [distinct(3, 4, 5)], None),
        ("amax", lambda x: F.amax(x, dim=(0, 2)), [distinct(3, 4, 5)], None),
        ("min-all", F.min, [distinct(3, 4, 5)], None),
        ("min-dim", lambda x: F.min(x, -1, keepdim=True), [distinct(3, 4, 5)], None),
        ("amin", lambda x: F.amin(x, dim=1), [distinct(3, 4, 5)], None),
        ("argmax", lambda x: F.argmax(x, dim=1), [distinct(3, 4, 5)], ()),
        ("argmin", lambda x: F.argmin(x), [distinct(3, 4, 5)], ()),
        ("maximum", F.maximum, [distinct(3, 4), distinct(4)], None),
        ("minimum", F.minimum, [distinct(3, 4), distinct(3, 1)], None),
        ("clamp", lambda x: F.clamp(x, -0.5, 0.7), [normal(3, 5)], None),
        ("clone", F.clone, [normal(3, 5)], None),
        ("var", lambda x: F.var(x, dim=(0, 2)), [normal(3, 4, 5)], None),
        ("std", lambda x: F.std(x, 1, correction=0, keepdim=True), [normal(3, 4, 5)], None),
        ("squeeze", lambda x: F.squeeze(x, 1), [normal(3, 1, 5)], None),
        ("unsqueeze", lambda x: F.unsqueeze(x, -1), [normal(3, 5)], None),
        ("reshape", lambda x: F.reshape(x, (4, -1)), [normal(2, 3, 4)], None),
        ("permute", lambda x: F.permute(x, (2, 0, 1)), [normal(2, 3, 4)], None),
        ("transpose", lambda x: F.transpose(x, 0, -1), [normal(2, 3, 4)], None),
        ("flatten", lambda x: F.flatten(x, 1), [x4], None),
        ("broadcast_to", lambda x: F.broadcast_to(x, (3, 4, 5)), [normal(4, 1)], None),
        ("sum_to", lambda x: minidl.Tensor(F.sum_to(x.data, (1, 5))), [normal(3, 5)], ()),   # on arrays
        ("getitem-slices", lambda x: F.getitem(x, (slice(None), slice(1, 3), Ellipsis)), [normal(3, 4, 5)], None),
        ("getitem-repeated-indices", lambda x: F.getitem(x, np.array([0, 2, 0, 0])), [normal(3, 5)], None),
        ("getitem-channels", lambda x: x[:, np.array([2, 0, 2])], [x4], None),        # LeNet-5's C3 gather
        ("relu", F.relu, [normal(3, 5)], None),
        ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), [normal(3, 5)], None),
        ("tanh", F.tanh, [normal(3, 5)], None),
        ("sigmoid", F.sigmoid, [normal(3, 5) * 5], None),
        ("logsigmoid", F.logsigmoid, [normal(3, 5) * 10], None),
        ("softplus", lambda x: F.softplus(x, beta=2.0, threshold=5.0), [normal(3, 5) * 3], None),
        ("softmax", lambda x: F.softmax(x, dim=1), [normal(4, 6) * 3], None),
        ("log_softmax", lambda x: F.log_softmax(x, dim=0), [normal(4, 6) * 3], None),
        ("linear", F.linear, [normal(5, 7), normal(3, 7), normal(3)], None),
        ("linear-3d-no-bias", F.linear, [normal(2, 5, 7), normal(3, 7)], None),
        ("conv2d", lambda x, w, b: F.conv2d(x, w, b, padding=1), [x4, normal(5, 4, 3, 3), normal(5)], None),
        ("conv2d-grouped-strided-dilated", lambda x, w: F.conv2d(x, w, stride=2, padding=2, dilation=2, groups=2),
         [x4, normal(6, 2, 3, 3)], None),
        ("conv2d-depthwise", lambda x, w: F.conv2d(x, w, padding=1, groups=4), [x4, normal(4, 1, 3, 3)], None),
        ("conv2d-pointwise-strided", lambda x, w: F.conv2d(x, w, stride=2), [x4, normal(3, 4, 1, 1)], None),
        ("conv_transpose2d", lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1),
         [x4, normal(4, 3, 3, 3), normal(3)], None),
        ("conv_transpose2d-grouped", lambda x, w: F.conv_transpose2d(x, w, stride=1, groups=2),
         [x4, normal(4, 3, 2, 2)], None),
        ("max_pool2d", lambda x: F.max_pool2d(x, 3, 2, padding=1, ceil_mode=True), [distinct(2, 3, 9, 8)], None),
        ("max_unpool2d", lambda x, i: F.max_unpool2d(x, i, 2), [pooled, switches], (0,)),
        ("avg_pool2d", lambda x: F.avg_pool2d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
         [x4], None),
        ("adaptive_avg_pool2d-bins", lambda x: F.adaptive_avg_pool2d(x, (4, 3)), [x4], None),
        ("adaptive_avg_pool2d-divisible", lambda x: F.adaptive_avg_pool2d(x, (3, 4)), [x4], None),
        ("global_avg_pool2d", F.global_avg_pool2d, [x4], None),
        ("batch_norm-train", lambda x, w, b, m, v: (F.batch_norm(x, m, v, w, b, training=True), m, v),
         [x4, positive(4), normal(4), *running], (0, 1, 2)),
        ("batch_norm-eval", lambda x, w, b, m, v: F.batch_norm(x, m, v, w, b, training=False),
         [x4, positive(4), normal(4), *running], (0, 1, 2)),
        ("batch_norm-2d", lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
         [normal(6, 4), positive(4), normal(4)], None),
        ("local_response_norm", lambda x: F.local_response_norm(x, size=3, alpha=0.1, k=1.0), [x4], None),
        ("dropout", lambda x: F.dropout(x, 0.3), [normal(4, 50)], None),
        ("drop_path", lambda x: F.drop_path(x, 0.5), [x4], None),
        ("cross_entropy", lambda x, t: F.cross_entropy(x, t, label_smoothing=0.1), [normal(5, 6), labels], (0,)),
        ("cross_entropy-sum", lambda x, t: F.cross_entropy(x, t, reduction="sum"), [normal(5, 6), labels], (0,)),
        ("cross_entropy-none", lambda x, t: F.cross_entropy(x, t, reduction="none"), [normal(5, 6), labels], (0,)),
        ("cross_entropy-weight-ignore", lambda x, t, w: F.cross_entropy(x, t, w, ignore_index=4),
         [normal(5, 6), labels, positive(6)], (0,)),
        ("cross_entropy-probabilities-2d", lambda x, q: F.cross_entropy(x, q, label_smoothing=0.2),
         [normal(2, 6, 3, 2), positive(2, 6, 3, 2)], None),
        ("mse_loss", F.mse_loss, [normal(3, 5), normal(3, 5)], None),
        ("cat", lambda a, b, c: F.cat([a, b, c], dim=1), [normal(2, 1, 3), normal(2, 4, 3), normal(2, 2, 3)],
         None),
        ("split", lambda x: F.split(x, [1, 3, 2], dim=1), [normal(2, 6, 3)], None),
        ("pad", lambda x: F.pad(x, (2, 1, 1, 2), value=0.5), [x4], None),
    ]
    return table


def covered_names(table):
    """The F.__all__ names a case table exercises (a case id is NAME or NAME-variant)."""
    return {case_id.split("-")[0] for case_id, *_ in table}
