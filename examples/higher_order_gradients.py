"""Backprop is itself a computation graph: Newton's method and a Hessian-vector product with minidl.

``minidl.grad(y, x, create_graph=True)`` records the backward pass as a graph, so its result (dy/dx, a
Tensor with a creator) can be differentiated again.

1. Newton's method on the 1-D function f(x) = x^4 - 2 x^2 (DeZero, step 33): the update
   x <- x - f'(x) / f''(x) takes f'' from a second ``minidl.grad``; it converges in a handful of steps where
   gradient descent x <- x - lr f'(x) needs hundreds.
2. A Hessian-vector product H v of the L2-regularised logistic loss
   f(w) = sum_i log(1 + exp(-y_i a_i.w)) + lam/2 |w|^2, computed as d/dw <df/dw, v> (two backward passes,
   never forming H), checked against the Hessian written out: H = A^T diag(s (1 - s)) A + lam I with
   s = sigmoid(y_i a_i.w).

    python examples/higher_order_gradients.py
"""
import numpy as np

import minidl
import minidl.functions as F


def f(x):
    return x ** 4 - 2 * x ** 2


def newton(x0=2.0, tol=1e-10, max_steps=100):
    """Minimise f by Newton's method; returns (steps, x)."""
    x = minidl.tensor(x0, dtype="float64", requires_grad=True)
    for step in range(1, max_steps + 1):
        (g,) = minidl.grad(f(x), x, create_graph=True)    # f'(x) = 4x^3 - 4x, itself a graph in x
        (h,) = minidl.grad(g, x)                          # f''(x) = 12x^2 - 4
        x = (x - g / h).detach().requires_grad_()
        if abs(g.item()) < tol:
            return step, x.item()
    return max_steps, x.item()


def gradient_descent(x0=2.0, lr=0.01, tol=1e-10, max_steps=100_000):
    """Minimise f by gradient descent; returns (steps, x)."""
    x = minidl.tensor(x0, dtype="float64", requires_grad=True)
    for step in range(1, max_steps + 1):
        (g,) = minidl.grad(f(x), x)
        with minidl.no_grad():
            x -= lr * g
        if abs(g.item()) < tol:
            return step, x.item()
    return max_steps, x.item()


def logistic_loss(w, A, y, lam):
    return F.softplus(-(y * (A @ w))).sum() + 0.5 * lam * (w * w).sum()


def hessian_vector_product(seed=0, n=20, d=5, lam=0.1):
    """H v by double backward and by the explicit Hessian; returns (hvp, explicit)."""
    rng = np.random.default_rng(seed)
    A_np, w_np, v_np = rng.standard_normal((n, d)), rng.standard_normal(d), rng.standard_normal(d)
    y_np = rng.choice([-1.0, 1.0], size=n)
    A, y = minidl.tensor(A_np, dtype="float64"), minidl.tensor(y_np, dtype="float64")
    w, v = minidl.tensor(w_np, dtype="float64", requires_grad=True), minidl.tensor(v_np, dtype="float64")

    (g,) = minidl.grad(logistic_loss(w, A, y, lam), w, create_graph=True)
    (hv,) = minidl.grad((g * v).sum(), w)           # d/dw <grad f(w), v> = H v

    s = 1 / (1 + np.exp(-(y_np * (A_np @ w_np))))
    H = A_np.T @ (A_np * (s * (1 - s))[:, None]) + lam * np.eye(d)     # y_i^2 = 1
    return hv.numpy(), H @ v_np


def main():
    steps, x = newton()
    print(f"Newton's method:  {steps:4d} steps to x = {x:.12f}  (f(x) = x^4 - 2x^2, from x = 2)")
    steps, x = gradient_descent()
    print(f"gradient descent: {steps:4d} steps to x = {x:.12f}  (lr = 0.01, same stop: |f'(x)| < 1e-10)")
    hv, explicit = hessian_vector_product()
    print(f"Hessian-vector product by double backward: {np.array2string(hv, precision=6)}")
    print(f"explicit Hessian times v:                  {np.array2string(explicit, precision=6)}")
    print(f"largest difference: {np.abs(hv - explicit).max():.2e}")


if __name__ == "__main__":
    main()
