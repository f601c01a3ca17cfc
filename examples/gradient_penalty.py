"""A gradient penalty (WGAN-GP, Gulrajani et al. 2017) on a small CNN critic: training on a gradient.

A Wasserstein GAN's critic D must be 1-Lipschitz. WGAN-GP asks for it softly, penalising the norm of D's
gradient with respect to its input at random points x_hat between real and fake images:

    loss = mean D(fake) - mean D(real) + lambda * mean over x_hat of (||dD/dx (x_hat)||_2 - 1)^2

The penalty is a function of a gradient, so training with it differentiates through a backward pass:
``minidl.grad(..., create_graph=True)`` records dD/dx as a graph (conv2d's gradient in x is a transposed
convolution, itself differentiable), and ``loss.backward()`` differentiates that graph in the weights.

Here the generator is left out: "real" images are bright diagonal strokes, "fake" ones uniform noise,
and only the critic trains. Its gradient norm starts far below 1 and the penalty falls as it learns.

    python examples/gradient_penalty.py          # 40 steps: the penalty going down
"""
import numpy as np

import minidl
from minidl import nn, optim

LAMBDA = 10.0   # the paper's weight of the penalty


def critic():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.LeakyReLU(0.2),     # N x 8 x 8 x 8
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.2),    # N x 16 x 4 x 4
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1))        # N x 1


def real_batch(rng, n):
    """Diagonal strokes at random offsets: n x 1 x 16 x 16 in [0, 1]."""
    rows, cols = np.indices((16, 16))
    offsets = rng.integers(-8, 8, size=(n, 1, 1, 1))
    return (np.abs(rows - cols - offsets) <= 1).astype(np.float32)


def gradient_penalty(D, real, fake, rng):
    """mean over the batch of (||dD/dx (x_hat)|| - 1)^2, x_hat = e real + (1 - e) fake, e ~ U(0, 1) per image."""
    e = rng.uniform(size=(real.shape[0], 1, 1, 1)).astype(np.float32)
    x_hat = minidl.tensor(e * real + (1 - e) * fake, requires_grad=True)
    (g,) = minidl.grad(D(x_hat).sum(), x_hat, create_graph=True)          # a graph: differentiable again
    norm = ((g * g).sum(dim=(1, 2, 3)) + 1e-12) ** 0.5
    return ((norm - 1) ** 2).mean()


def train(steps=40, batch=16, seed=0):
    """Train the critic for ``steps`` steps; print and return the penalty of each."""
    minidl.manual_seed(seed)
    rng = np.random.default_rng(seed)
    D = critic()
    optimizer = optim.Adam(D.parameters(), lr=1e-2, betas=(0.5, 0.9))
    penalties = []
    for step in range(steps):
        real, fake = real_batch(rng, batch), rng.uniform(size=(batch, 1, 16, 16)).astype(np.float32)
        penalty = gradient_penalty(D, real, fake, rng)
        wasserstein = D(minidl.tensor(fake)).mean() - D(minidl.tensor(real)).mean()
        loss = wasserstein + LAMBDA * penalty
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        penalties.append(penalty.item())
        print(f"step {step:3d}   penalty {penalty.item():.4f}   critic loss {loss.item():+.4f}")
    return penalties


if __name__ == "__main__":
    train()
