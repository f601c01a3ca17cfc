"""``SyncBatchNorm``: batch normalisation with statistics over the images of *all* ranks.

Per channel c, with m_r values of c on rank r (N_r x H x W) and M = sum_r m_r:

    forward:  S1 = allreduce(sum x), S2 = allreduce(sum x^2)         (one Allreduce of [S1, S2, m])
              mean = S1 / M,  var = S2 / M - mean^2 (biased),  xhat = (x - mean) / sqrt(var + eps)
              y = gamma xhat + beta
    backward: G1 = allreduce(sum gy), G2 = allreduce(sum gy xhat)      (one Allreduce of [G1, G2])
              gx = gamma / sqrt(var + eps) (gy - G1 / M - xhat G2 / M)
              ggamma = sum gy xhat, gbeta = sum gy                   (this rank's sums: the parameters'
                                                                      gradients are averaged later by
                                                                      allreduce_gradients, like all others)

gx is the gradient of the *sum* of all ranks' losses with respect to this rank's x (the other ranks'
losses depend on x through mean and var); allreduce_gradients then divides every parameter gradient by
the number of ranks, so N ranks x B/N images compute what one process computes on B images with
BatchNorm. The sums are accumulated in float64 (S2/M - mean^2 cancels badly in float32).

The running statistics move as in BatchNorm (PyTorch): running_var takes the unbiased variance over all
M values. In eval mode it is plain BatchNorm with the running estimates (no communication).

Per-rank BatchNorm (``nn.BatchNorm2d``) stays the default, as in PyTorch DDP: each rank normalises with
the statistics of its own B/N images, which is cheaper and usually fine for large per-rank batches;
``SyncBatchNorm`` is for small per-rank batches (detection, segmentation). Swap every BatchNorm of a model
with ``SyncBatchNorm.convert_sync_batchnorm(model, comm)``.

Deviation from PyTorch: the communicator is passed as ``comm`` (PyTorch: ``process_group``); without one
(None) it is a world of one, where the layer equals BatchNorm.
"""
import numpy as np

from minidl.autograd import no_grad
from minidl.distributed.comm import SingleProcessCommunicator
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, _BatchNorm
from minidl.tensor import Function, Tensor


class SyncBatchNormTrain(Function):
    """The training-mode op above; inputs x (N, C, *), gamma (C,), beta (C,)."""

    def __init__(self, comm, eps):
        self.comm, self.eps = comm, eps

    def _allreduce(self, buf):
        if self.comm.size > 1:
            self.comm._allreduce_sum_(buf)
        return buf

    def forward(self, x, gamma, beta):
        xp, C = self.xp, x.shape[1]
        self.axes = (0,) + tuple(range(2, x.ndim))
        self.shape = (1, C) + (1,) * (x.ndim - 2)
        x64 = x.astype(np.float64)
        count = x.size // C
        sums = self._allreduce(xp.concatenate([x64.sum(axis=self.axes), (x64 * x64).sum(axis=self.axes),
                                               xp.full(1, count, dtype=np.float64)]))
        self.count = M = float(sums[-1])
        self.mean = sums[:C] / M
        self.batch_var = xp.maximum(sums[C:2 * C] / M - self.mean * self.mean, 0.0)
        self.invstd = 1.0 / xp.sqrt(self.batch_var + self.eps)
        self.xhat = (x64 - self.mean.reshape(self.shape)) * self.invstd.reshape(self.shape)
        self.gamma = gamma
        y = self.xhat * gamma.astype(np.float64).reshape(self.shape) + beta.astype(np.float64).reshape(self.shape)
        return y.astype(x.dtype)

    def backward(self, gy):
        xp, C, M = self.xp, self.gamma.shape[0], self.count
        gy64 = gy.astype(np.float64)
        local = xp.concatenate([gy64.sum(axis=self.axes), (gy64 * self.xhat).sum(axis=self.axes)])
        gbeta, ggamma = local[:C].copy(), local[C:].copy()
        total = self._allreduce(local)
        G1, G2 = total[:C].reshape(self.shape), total[C:].reshape(self.shape)
        scale = (self.gamma.astype(np.float64) * self.invstd).reshape(self.shape)
        gx = scale * (gy64 - G1 / M - self.xhat * G2 / M)
        return gx.astype(gy.dtype), ggamma.astype(self.gamma.dtype), gbeta.astype(self.gamma.dtype)


class SyncBatchNorm(_BatchNorm):
    """BatchNorm over (N, C, *) inputs with statistics over all ranks of ``comm`` (see the module docstring).

    >>> bn = SyncBatchNorm(64, comm=comm)
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, comm=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        object.__setattr__(self, "comm", comm if comm is not None else SingleProcessCommunicator())

    def _check_input(self, x):
        if x.ndim < 2:
            raise ValueError(f"SyncBatchNorm: expected an (N, C, *) input of 2 or more dims, got shape {tuple(x.shape)}")

    def forward(self, x):
        use_batch_stats = self.training or self.running_mean is None
        if not use_batch_stats:
            return super().forward(x)  # eval with running estimates: no communication
        self._check_input(x)
        C = self.num_features
        if x.shape[1] != C:
            raise ValueError(f"SyncBatchNorm: expected {C} channels (dim 1), got input of shape {tuple(x.shape)}")
        xp = x.xp
        gamma = self.weight if self.weight is not None else Tensor(xp.ones(C, dtype=x.dtype))
        beta = self.bias if self.bias is not None else Tensor(xp.zeros(C, dtype=x.dtype))
        f = SyncBatchNormTrain(self.comm, self.eps)
        y = f(x, gamma, beta)
        if f.count < 2:
            raise ValueError(f"SyncBatchNorm: training needs more than one value per channel over all ranks, "
                             f"got x of shape {tuple(x.shape)} on {self.comm.size} rank(s)")
        if self.training and self.track_running_stats:
            with no_grad():
                self.num_batches_tracked.data += 1
                factor = 1.0 / float(self.num_batches_tracked.data) if self.momentum is None else self.momentum
                self.running_mean.data *= 1 - factor
                self.running_mean.data += (factor * f.mean).astype(self.running_mean.dtype)
                self.running_var.data *= 1 - factor
                self.running_var.data += (factor * f.batch_var * f.count / (f.count - 1)).astype(self.running_var.dtype)
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module, comm=None):
        """``module`` with every BatchNorm1d/BatchNorm2d replaced by a SyncBatchNorm holding the same
        parameters and running statistics (as ``torch.nn.SyncBatchNorm.convert_sync_batchnorm``)."""
        if isinstance(module, (BatchNorm1d, BatchNorm2d)):
            sync = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats,
                       comm=comm)
            sync.load_state_dict(module.state_dict())
            sync.train(module.training)
            if module.affine:
                sync.weight.requires_grad = module.weight.requires_grad
                sync.bias.requires_grad = module.bias.requires_grad
            return sync
        for name, child in list(module.named_children()):
            setattr(module, name, cls.convert_sync_batchnorm(child, comm))
        return module

