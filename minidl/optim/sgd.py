"""Stochastic gradient descent with momentum, Nesterov momentum and weight decay (PyTorch's rule)."""
from minidl.backend import get_array_module
from minidl.optim.optimizer import Optimizer, match_array


class SGD(Optimizer):
    """SGD, with the update rule of ``torch.optim.SGD``. For each parameter p with gradient g:

    .. code-block:: text

        g = g + weight_decay * p                       (L2 penalty)
        v = g                            at the first step (momentum > 0)
        v = momentum * v + (1 - dampening) * g         later steps
        g = g + momentum * v   if nesterov,  else  g = v
        p = p - lr * g

    This is the "velocity" form ``v = mu v + g; p -= lr v``, equivalent to the CS231n notes'
    ``v = mu v - lr g; p += v`` while lr is constant (the two differ in how a change of lr takes effect).

    >>> opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    >>> opt.zero_grad(); loss.backward(); opt.step()
    """

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
        super().__init__(params, defaults)

    def _check_hyperparameters(self, group):
        if group["lr"] < 0:
            raise ValueError(f"SGD: invalid learning rate {group['lr']} (must be >= 0)")
        if group["momentum"] < 0:
            raise ValueError(f"SGD: invalid momentum {group['momentum']} (must be >= 0)")
        if group["weight_decay"] < 0:
            raise ValueError(f"SGD: invalid weight_decay {group['weight_decay']} (must be >= 0)")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("SGD: Nesterov momentum needs momentum > 0 and dampening = 0, got "
                             f"momentum={group['momentum']}, dampening={group['dampening']}")

    def _update_group(self, group, params):
        lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
        weight_decay, nesterov = group["weight_decay"], group["nesterov"]
        for p in params:
            xp = get_array_module(p.data)
            g = match_array(p.grad.data, p.data)
            if weight_decay != 0:
                g = g + weight_decay * p.data
            if momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = xp.array(g, copy=True)
                else:
                    buf = state["momentum_buffer"] = match_array(buf, p.data)
                    buf *= momentum
                    buf += g if dampening == 0 else (1 - dampening) * g    # (1 - 0) * g is g: one pass fewer
                g = g + momentum * buf if nesterov else buf
            p.data -= lr * g
