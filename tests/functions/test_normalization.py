"""batch_norm and local_response_norm: the running-statistics update, the normalization property, the paper's
LRN formula (their gradient checks are rows of the op table, tests/functions/op_cases.py)."""
import numpy as np

import minidl
import minidl.functions as F
from tests.helpers import t64

rng = np.random.default_rng(0)


def test_batch_norm_training_output_is_normalized():
    x = minidl.Tensor((rng.standard_normal((16, 4, 5, 5)) * 3 + 7).astype(np.float32))
    y = F.batch_norm(x, None, None, training=True).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)


def test_batch_norm_updates_running_statistics():
    x = rng.standard_normal((8, 3, 4, 4)) * 2 + 5
    mean, var = minidl.zeros(3, dtype=np.float64), minidl.ones(3, dtype=np.float64)
    F.batch_norm(t64(x), mean, var, training=True, momentum=0.1)
    np.testing.assert_allclose(mean.data, 0.1 * x.mean(axis=(0, 2, 3)), rtol=1e-10)
    np.testing.assert_allclose(var.data, 0.9 + 0.1 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-10)
    y = F.batch_norm(t64(x), mean, var, training=False).data
    expected = (x - mean.data[:, None, None]) / np.sqrt(var.data[:, None, None] + 1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-10)


def test_lrn_paper_formula():
    x = rng.standard_normal((1, 7, 2, 2))
    y = F.local_response_norm(t64(x), 5, alpha=0.3, beta=0.75, k=2.0, alpha_over_size=False).data
    for c in range(7):
        window = x[0, max(0, c - 2):min(7, c + 3)]
        expected = x[0, c] / (2.0 + 0.3 * (window ** 2).sum(axis=0)) ** 0.75
        np.testing.assert_allclose(y[0, c], expected, rtol=1e-12)
    y_caffe = F.local_response_norm(t64(x), 5, alpha=0.3 * 5, k=2.0).data   # PyTorch's convention
    np.testing.assert_allclose(y_caffe, y, rtol=1e-12)
