"""Batch normalization (Ioffe & Szegedy 2015) and local response normalization (Krizhevsky et al. 2012)."""
from minidl import kernels
from minidl.autograd import no_grad
from minidl.functions._checks import as_input, check_same_device
from minidl.tensor import Function, Tensor


def _as_4d(a):
    return a.reshape(a.shape[0], a.shape[1], 1, 1) if a.ndim == 2 else a


def _channel_axes(x):
    """The axes a per-channel statistic reduces over, and the shape that broadcasts a (C,) vector on x."""
    return ((0,), (1, -1)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))


class BatchNormTrain(Function):
    """Training-mode batch norm on the batch's statistics (kernels.batch_norm_forward_train / _backward).

    Second order: ``backward_graph`` writes the first-order gradient (the formula of
    kernels.batch_norm_backward) in differentiable minidl ops, recomputing mean and invstd from x, so
    create_graph=True records it and differentiating it again goes through those primitive ops, not the
    kernel. (The kernel accumulates in float64; in float32 this path accumulates in float32.)
    """

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.x_shape = x.shape
        x4 = _as_4d(x)
        y, self.mean, self.invstd, self.batch_var = kernels.batch_norm_forward_train(x4, gamma, beta, self.eps)
        self.x4, self.gamma = x4, gamma
        return y.reshape(x.shape)

    def backward(self, gy):
        gx, ggamma, gbeta = kernels.batch_norm_backward(_as_4d(gy), self.x4, self.gamma, self.mean, self.invstd)
        return gx.reshape(self.x_shape), ggamma, gbeta

    def backward_graph(self, gy):
        """xhat = (x - mean) invstd;  dbeta = sum(gy);  dgamma = sum(gy xhat);
        gx = gamma invstd (gy - dbeta / M - xhat dgamma / M)   (sums and means over N, H, W; M values)."""
        x, gamma, _ = self.inputs
        axes, shape = _channel_axes(x)
        M = x.numel() // x.shape[1]
        centered = x - x.mean(dim=axes, keepdim=True)
        invstd = ((centered * centered).mean(dim=axes, keepdim=True) + self.eps) ** -0.5
        xhat = centered * invstd
        gbeta = gy.sum(dim=axes)
        ggamma = (gy * xhat).sum(dim=axes)
        gx = gamma.reshape(shape) * invstd * (gy - gbeta.reshape(shape) / M - xhat * ggamma.reshape(shape) / M)
        return gx, ggamma, gbeta


class BatchNormEval(Function):
    """y = gamma (x - running_mean) / sqrt(running_var + eps) + beta: an affine map per channel."""

    def __init__(self, running_mean, running_var, eps):
        self.running_mean, self.running_var, self.eps = running_mean, running_var, eps

    def forward(self, x, gamma, beta):
        self.x, self.gamma = x, gamma
        y = kernels.batch_norm_forward_eval(_as_4d(x), gamma, beta, self.running_mean, self.running_var, self.eps)
        return y.reshape(x.shape)

    def backward(self, gy):
        xp = self.xp
        shape = (1, -1) + (1,) * (gy.ndim - 2)
        invstd = 1.0 / xp.sqrt(self.running_var + self.eps)
        axes = (0,) + tuple(range(2, gy.ndim))
        xhat = (self.x - self.running_mean.reshape(shape)) * invstd.reshape(shape)
        gx = gy * (self.gamma * invstd).reshape(shape)
        return gx, (gy * xhat).sum(axis=axes), gy.sum(axis=axes)

    def backward_graph(self, gy):
        """The same affine map in minidl ops (running statistics are constants): linear in x."""
        x, gamma, _ = self.inputs
        axes, shape = _channel_axes(x)
        xp = self.xp
        invstd = Tensor((1.0 / xp.sqrt(self.running_var + self.eps)).astype(x.dtype).reshape(shape))
        xhat = (x - Tensor(self.running_mean.astype(x.dtype).reshape(shape))) * invstd
        return gy * gamma.reshape(shape) * invstd, (gy * xhat).sum(dim=axes), gy.sum(dim=axes)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,  # noqa: A002
               eps=1e-5):
    """Normalize each channel of an N x C or N x C x H x W tensor.

    Training: use the batch's mean and (biased) variance over N, H, W, and update the running statistics
    in place: running = (1 - momentum) running + momentum batch, with the unbiased variance as PyTorch.
    Evaluation: use the running statistics. ``weight`` (gamma) and ``bias`` (beta) scale and shift.

    Second order (``backward(create_graph=True)``): the gradient is written in differentiable primitive ops
    (mean, products, a power), recomputing the batch statistics from x, not through the kernels.
    """
    op = "batch_norm"
    x = as_input(input, op)
    if x.ndim not in (2, 4):
        raise ValueError(f"{op}: x must be 2-D (N x C) or 4-D (N x C x H x W), got shape {tuple(x.shape)}")
    C = x.shape[1]
    xp = x.xp
    gamma = as_input(weight, op) if weight is not None else Tensor(xp.ones(C, dtype=x.dtype))
    beta = as_input(bias, op) if bias is not None else Tensor(xp.zeros(C, dtype=x.dtype))
    for name, t in (("weight", gamma), ("bias", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"{op}: {name} must have shape ({C},) for x with {C} channels, got {tuple(t.shape)}")
    check_same_device(op, x, gamma, beta, running_mean, running_var)
    if training:
        count = x.shape[0] * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)
        if count < 2:
            raise ValueError(f"{op}: training needs more than one value per channel to compute a variance, "
                             f"got x of shape {tuple(x.shape)}")
        f = BatchNormTrain(eps)
        y = f(x, gamma, beta)
        if running_mean is not None or running_var is not None:
            with no_grad():
                var = f.batch_var    # float64, as computed: not rebuilt from the float32 invstd
                if running_mean is not None:
                    running_mean.data *= 1 - momentum
                    running_mean.data += (momentum * f.mean).astype(running_mean.dtype)
                if running_var is not None:
                    running_var.data *= 1 - momentum
                    running_var.data += (momentum * var * count / (count - 1)).astype(running_var.dtype)
        return y
    if running_mean is None or running_var is None:
        raise ValueError(f"{op}: evaluation mode needs running_mean and running_var (or pass training=True)")
    return BatchNormEval(running_mean.data, running_var.data, eps)(x, gamma, beta)


class LocalResponseNorm(Function):
    """LRN by its kernels (kernels.lrn_forward / lrn_backward).

    Second order: ``backward_graph`` writes the gradient of kernels.lrn_backward in differentiable minidl
    ops, with the window sum over channels as a product with a C x C band matrix B (B[c, c'] = 1 when c'
    is in c's window):  scale = k + alpha B (x^2),  y = x scale^-beta,
        gx = gy scale^-beta - 2 alpha beta x B^T (gy x scale^(-beta-1)),
    so create_graph=True records it and higher derivatives go through those primitive ops, not the kernel.
    """

    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        self.x = x
        self.y, self.scale = kernels.lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        return self.y

    def backward(self, gy):
        return kernels.lrn_backward(gy, self.x, self.y, self.scale, self.size, self.alpha, self.beta)

    def backward_graph(self, gy):
        x = self.inputs[0]
        C = x.shape[1]
        band = self.xp.zeros((C, C), dtype=x.dtype)   # band[c, c'] = 1 for c - size//2 <= c' <= c + (size-1)//2
        for c in range(C):
            band[c, max(0, c - self.size // 2):c + (self.size - 1) // 2 + 1] = 1

        def over_channels(a, matrix):   # out[n, c] = sum over c' of matrix[c', c] a[n, c']
            return (a.permute(0, 2, 3, 1) @ Tensor(matrix)).permute(0, 3, 1, 2)

        scale = self.k + self.alpha * over_channels(x * x, band.T)
        gx = gy * scale ** -self.beta
        return gx - 2 * self.alpha * self.beta * x * over_channels(gy * x * scale ** (-self.beta - 1), band)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True):  # noqa: A002
    """Local response normalization across channels (AlexNet, Section 3.3):

        b[c] = a[c] / (k + alpha' * sum_{c' = c - size//2}^{c + (size - 1)//2} a[c']^2) ** beta

    The defaults are PyTorch's (``torch.nn.functional.local_response_norm``): alpha' = alpha / size (also
    Caffe's and ONNX's convention) and k = 1. The AlexNet paper writes alpha' = alpha with n=5,
    alpha=1e-4, beta=0.75, k=2: pass ``alpha_over_size=False, k=2.0`` for it (minidl's AlexNet does).

    Second order (``backward(create_graph=True)``): the gradient is written in differentiable primitive ops
    (the window sum as a product with a band matrix; see LocalResponseNorm), not through the kernels.
    """
    x = input
    op = "local_response_norm"
    x = as_input(x, op)
    if x.ndim != 4:
        raise ValueError(f"{op}: x must be 4-D (N x C x H x W), got shape {tuple(x.shape)}")
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"{op}: size must be a positive int, got {size!r}")
    effective_alpha = alpha / size if alpha_over_size else alpha
    return LocalResponseNorm(size, effective_alpha, beta, k)(x)
