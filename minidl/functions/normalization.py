"""Batch normalization (Ioffe & Szegedy 2015) and local response normalization (Krizhevsky et al. 2012)."""
from minidl import kernels
from minidl.autograd import no_grad
from minidl.functions._checks import as_input, check_same_device
from minidl.tensor import Function, Tensor


def _as_4d(a):
    return a.reshape(a.shape[0], a.shape[1], 1, 1) if a.ndim == 2 else a


class BatchNormTrain(Function):
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


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,  # noqa: A002
               eps=1e-5):
    """Normalize each channel of an N x C or N x C x H x W tensor.

    Training: use the batch's mean and (biased) variance over N, H, W, and update the running statistics
    in place: running = (1 - momentum) running + momentum batch, with the unbiased variance as PyTorch.
    Evaluation: use the running statistics. ``weight`` (gamma) and ``bias`` (beta) scale and shift.
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
    def __init__(self, size, alpha, beta, k):
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        self.x = x
        self.y, self.scale = kernels.lrn_forward(x, self.size, self.alpha, self.beta, self.k)
        return self.y

    def backward(self, gy):
        return kernels.lrn_backward(gy, self.x, self.y, self.scale, self.size, self.alpha, self.beta)


def local_response_norm(input, size, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True):  # noqa: A002
    """Local response normalization across channels (AlexNet, Section 3.3):

        b[c] = a[c] / (k + alpha' * sum_{c' = c - size//2}^{c + (size - 1)//2} a[c']^2) ** beta

    The defaults are PyTorch's (``torch.nn.functional.local_response_norm``): alpha' = alpha / size (also
    Caffe's and ONNX's convention) and k = 1. The AlexNet paper writes alpha' = alpha with n=5,
    alpha=1e-4, beta=0.75, k=2: pass ``alpha_over_size=False, k=2.0`` for it (minidl's AlexNet does).
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
