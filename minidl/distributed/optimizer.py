"""``DistributedOptimizer``: an optimizer whose ``step`` first averages the gradients over all ranks."""


class DistributedOptimizer:
    """Wrap ``optimizer`` so that every rank takes the same step.

    At construction, rank 0's parameters (and, when ``model`` is given, its buffers too: BatchNorm's
    running statistics) are broadcast to every rank, so all ranks start from one model; construct it before
    the first forward pass. ``step()`` then averages the gradients with ``comm.allreduce_gradients`` (one
    Allreduce per dtype bucket) and calls the wrapped optimizer's ``step``.

    Deviation from ChainerMN's multi-node optimizer: the broadcast happens at construction, not inside the
    first update, so the first gradients are already computed from the common weights. Everything else
    (``zero_grad``, ``param_groups``, ``state_dict``, ...) is the wrapped optimizer's.
    """

    def __init__(self, optimizer, comm, model=None, root=0):
        self.optimizer, self.comm = optimizer, comm
        self._params = [p for group in optimizer.param_groups for p in group["params"]]
        if model is not None:
            comm.bcast_parameters(model, root=root)
        else:
            comm.bcast_parameters(_ParameterList(self._params), root=root)

    def step(self, closure=None):
        self.comm.allreduce_gradients(self._params)
        return self.optimizer.step(closure)

    def __getattr__(self, name):  # zero_grad, param_groups, state, state_dict, load_state_dict, ...
        if name in ("optimizer", "comm", "_params"):
            raise AttributeError(name)
        return getattr(self.optimizer, name)

    def __repr__(self):
        return f"DistributedOptimizer({self.optimizer!r}, {self.comm!r})"


class _ParameterList:
    """A list of parameters seen as a model (``named_parameters``/``named_buffers``) for the broadcast."""

    def __init__(self, params):
        self.params = params

    def named_parameters(self):
        return [(str(i), p) for i, p in enumerate(self.params)]

    def named_buffers(self):
        return []
