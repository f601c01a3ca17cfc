"""Normalisation layers: ``BatchNorm1d``, ``BatchNorm2d`` and ``LocalResponseNorm``.

Batch normalisation (Ioffe & Szegedy 2015), per channel c over the batch (and spatial) axes:
``y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c``. In training mean and var are the batch's
(biased var), and the running estimates move towards them:
``running = (1 - momentum) * running + momentum * batch_stat`` (running_var takes the unbiased batch
variance, as in PyTorch). In eval mode the running estimates are used instead.
"""
import numpy as np

import minidl.functions as F
from minidl.nn.module import Module
from minidl.tensor import Parameter, Tensor


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d; they differ only in the input ranks they accept."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        if not isinstance(num_features, (int, np.integer)) or num_features <= 0:
            raise ValueError(f"{type(self).__name__}: num_features must be a positive int, got {num_features!r}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"{type(self).__name__}: momentum must be in [0, 1] or None, got {momentum}")
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=np.float32))
            self.bias = Parameter(np.zeros(self.num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def _check_input(self, x):
        raise NotImplementedError

    def forward(self, x):
        self._check_input(x)
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels (dim 1), "
                             f"got input of shape {tuple(x.shape)}")
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative moving average: the mean of all batch statistics so far
                factor = 1.0 / float(self.num_batches_tracked.data)
        # Batch statistics in training, and in eval too when there are no running estimates to use.
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        running_mean = self.running_mean if track else None
        running_var = self.running_var if track else None
        if x.ndim == 3:  # (N, C, L): normalise over N and L, as F.batch_norm does over N, H and W
            N, C, L = x.shape
            y = F.batch_norm(x.reshape(N, C, L, 1), running_mean, running_var, self.weight, self.bias,
                             use_batch_stats, factor, self.eps)
            return y.reshape(N, C, L)
        return F.batch_norm(x, running_mean, running_var, self.weight, self.bias, use_batch_stats, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) inputs (after a Linear layer) or (N, C, L); statistics per feature C."""

    def _check_input(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"BatchNorm1d: expected a 2-D (N, C) or 3-D (N, C, L) input, got shape {tuple(x.shape)}")


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs; statistics per channel C over N, H and W.

    >>> bn = nn.BatchNorm2d(64)        # weight 1, bias 0, running_mean 0, running_var 1
    """

    def _check_input(self, x):
        if x.ndim != 4:
            raise ValueError(f"BatchNorm2d: expected a 4-D (N, C, H, W) input, got shape {tuple(x.shape)}")


class LocalResponseNorm(Module):
    """Local response normalisation across channels (AlexNet, Krizhevsky et al. 2012, section 3.3):

    ``b[c] = a[c] / (k + alpha' * sum over the `size` channels around c of a[c']^2) ** beta``

    Two conventions exist for alpha':

    * PyTorch, Caffe and ONNX (the defaults here, as in ``torch.nn.LocalResponseNorm``):
      ``alpha' = alpha / size`` and k = 1.0. ``nn.LocalResponseNorm(5)`` equals
      ``torch.nn.LocalResponseNorm(5)``.
    * AlexNet paper: ``alpha' = alpha`` (``alpha_over_size=False``); the paper uses size=5, alpha=1e-4,
      beta=0.75, k=2: ``nn.LocalResponseNorm(5, 1e-4, 0.75, 2.0, alpha_over_size=False)``.

    The same alpha thus gives a response ``size`` times weaker under the first convention: say which
    one a model uses.
    """

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0, alpha_over_size=True):
        super().__init__()
        if not isinstance(size, (int, np.integer)) or size <= 0:
            raise ValueError(f"LocalResponseNorm: size must be a positive int, got {size!r}")
        self.size = int(size)
        self.alpha = alpha
        self.beta = beta
        self.k = k
        self.alpha_over_size = alpha_over_size

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k, self.alpha_over_size)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}, alpha_over_size={self.alpha_over_size}"
