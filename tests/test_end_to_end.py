"""A small CNN, written with minidl.functions alone, overfits a fixed batch of 32 images."""
import numpy as np

import minidl
import minidl.functions as F


def test_small_cnn_overfits_a_fixed_batch():
    rng = np.random.default_rng(0)
    images = minidl.tensor(rng.standard_normal((32, 1, 12, 12)).astype(np.float32))
    labels = rng.integers(0, 10, 32)

    def param(*shape, fan_in):
        return minidl.Parameter((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32))
    W1, b1 = param(8, 1, 3, 3, fan_in=9), minidl.Parameter(np.zeros(8, np.float32))
    W2, b2 = param(16, 8, 3, 3, fan_in=72), minidl.Parameter(np.zeros(16, np.float32))
    g, beta = minidl.Parameter(np.ones(16, np.float32)), minidl.Parameter(np.zeros(16, np.float32))
    W3, b3 = param(10, 16 * 3 * 3, fan_in=144), minidl.Parameter(np.zeros(10, np.float32))
    params = [W1, b1, W2, b2, g, beta, W3, b3]

    def forward(x):
        h = F.max_pool2d(F.relu(F.conv2d(x, W1, b1, padding=1)), 2)             # 32 x 8 x 6 x 6
        h = F.batch_norm(F.conv2d(h, W2, b2, padding=1), None, None, g, beta, training=True)
        h = F.avg_pool2d(F.relu(h), 2)                                          # 32 x 16 x 3 x 3
        return F.linear(F.flatten(h, 1), W3, b3)

    velocity = [np.zeros_like(p.data) for p in params]
    for step in range(150):
        loss = F.cross_entropy(forward(images), labels)
        for p in params:
            p.grad = None
        loss.backward()
        for p, v in zip(params, velocity):
            v *= 0.9
            v -= 0.05 * p.grad.data
            p.data += v
    accuracy = (forward(images).data.argmax(axis=1) == labels).mean()
    assert accuracy == 1.0, f"accuracy {accuracy}, loss {loss.item()}"
    assert loss.item() < 0.05
