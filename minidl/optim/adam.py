"""Adam (Kingma & Ba 2015) and AdamW (Loshchilov & Hutter 2019), with PyTorch's update rules."""
import math

from minidl.backend import get_array_module
from minidl.optim.optimizer import Optimizer, match_array


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam``. For each parameter p with gradient g, at step t = 1, 2, ...:

    .. code-block:: text

        g = g + weight_decay * p                       (L2 penalty, coupled to the gradient)
        m = beta1 * m + (1 - beta1) * g                first moment
        v = beta2 * v + (1 - beta2) * g^2              second moment
        v_max = max(v_max, v)                          (amsgrad only; then v_max replaces v below)
        p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

    The two ``1 - beta^t`` factors undo the bias of m and v towards their zero start.
    """

    decoupled_weight_decay = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group):
        name = type(self).__name__
        if group["lr"] < 0:
            raise ValueError(f"{name}: invalid learning rate {group['lr']} (must be >= 0)")
        if group["eps"] < 0:
            raise ValueError(f"{name}: invalid eps {group['eps']} (must be >= 0)")
        beta1, beta2 = group["betas"]
        if not (0.0 <= beta1 < 1.0 and 0.0 <= beta2 < 1.0):
            raise ValueError(f"{name}: invalid betas {group['betas']} (each must be in [0, 1))")
        if group["weight_decay"] < 0:
            raise ValueError(f"{name}: invalid weight_decay {group['weight_decay']} (must be >= 0)")

    def _update_group(self, group, params):
        lr, eps, weight_decay, amsgrad = group["lr"], group["eps"], group["weight_decay"], group["amsgrad"]
        beta1, beta2 = group["betas"]
        for p in params:
            xp = get_array_module(p.data)
            g = match_array(p.grad.data, p.data)
            state = self.state.setdefault(p, {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = xp.zeros_like(p.data)
                state["exp_avg_sq"] = xp.zeros_like(p.data)
            if amsgrad and "max_exp_avg_sq" not in state:
                state["max_exp_avg_sq"] = xp.zeros_like(p.data)
            state["step"] += 1
            step = state["step"]
            if weight_decay != 0:
                if self.decoupled_weight_decay:
                    p.data *= 1 - lr * weight_decay
                else:
                    g = g + weight_decay * p.data
            m = state["exp_avg"] = match_array(state["exp_avg"], p.data)
            v = state["exp_avg_sq"] = match_array(state["exp_avg_sq"], p.data)
            m *= beta1
            m += (1 - beta1) * g
            v *= beta2
            v += (1 - beta2) * (g * g)
            if amsgrad:
                v_max = state["max_exp_avg_sq"] = match_array(state["max_exp_avg_sq"], p.data)
                xp.maximum(v_max, v, out=v_max)
                v = v_max
            step_size = lr / (1 - beta1 ** step)
            denom = xp.sqrt(v) / math.sqrt(1 - beta2 ** step) + eps
            p.data -= step_size * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``: before the Adam step,
    ``p = p * (1 - lr * weight_decay)``, instead of adding ``weight_decay * p`` to the gradient (where
    Adam's per-coordinate scaling would weaken it for parameters with large gradients)."""

    decoupled_weight_decay = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
