"""The backward pass: grad mode and reverse-mode traversal of the define-by-run graph.

A graph is made of tensors (``.creator`` points at the Function that produced them) and Functions
(``.inputs`` holds the tensors they read, ``.outputs`` weak references to the tensors they made). Each
Function has a *generation*, one more than the newest of its inputs, so processing Functions from the
highest generation down visits every Function after all of its consumers: a topological order found
without recursion (ResNet-152 and DenseNet-201 graphs are thousands of nodes deep).

This module walks the attributes above and the two methods a tensor offers it (``_accumulate_grad``,
``_retain_grad``); it knows nothing else of Tensor.
"""
import contextlib
import heapq
import threading

_state = threading.local()


def is_grad_enabled():
    """False inside ``with minidl.no_grad():``."""
    return getattr(_state, "enabled", True)


def set_grad_enabled(mode):
    _state.enabled = bool(mode)


@contextlib.contextmanager
def no_grad():
    """Run ops without recording a graph (inference, evaluation, optimizer updates)."""
    previous = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


@contextlib.contextmanager
def enable_grad():
    previous = is_grad_enabled()
    _state.enabled = True
    try:
        yield
    finally:
        _state.enabled = previous


def run_backward(root, root_grad, retain_graph=False):
    """Propagate ``root_grad`` (an array shaped like ``root``) back to every leaf that requires grad.

    Leaf gradients accumulate into ``leaf.grad`` across calls; intermediate gradients are dropped as soon
    as the Function that needs them has run. Unless ``retain_graph``, every Function visited releases the
    arrays it saved, so a training loop's memory does not grow with the number of steps.
    """
    # id(tensor) -> [tensor, gradient]: holding the tensor keeps its weak reference in its creator alive
    grads = {id(root): [root, root_grad]}
    heap = []
    seen = set()

    def push(func):
        # Ties between Functions of one generation go to the newer one (its creation number): a fixed
        # order, so gradient contributions are summed the same way in every run.
        if id(func) not in seen:
            seen.add(id(func))
            heapq.heappush(heap, (-func.generation, -func.sequence, func))

    if root.creator is None:
        root._accumulate_grad(root_grad)
        return
    push(root.creator)
    while heap:
        _, _, func = heapq.heappop(heap)
        if func.inputs is None:
            raise RuntimeError(
                f"backward: the graph through {func.name} was already freed by an earlier backward(); "
                "call backward(retain_graph=True) the first time to backpropagate twice")
        func.check_versions()
        outputs = [ref() for ref in func.outputs]
        gys = []
        for i, out in enumerate(outputs):
            entry = grads.pop(id(out), None) if out is not None else None
            gy = entry[1] if entry is not None else None
            if gy is None:
                shape, dtype = func.output_meta[i]
                gy = func.xp.zeros(shape, dtype=dtype)
            elif out._retain_grad:
                out._accumulate_grad(gy)
            gys.append(gy)
        gxs = func.backward(*gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(func.inputs):
            raise RuntimeError(f"{func.name}.backward returned {len(gxs)} gradients for {len(func.inputs)} inputs")
        for x, gx in zip(func.inputs, gxs):
            if gx is None or not x.requires_grad:
                continue
            if gx.shape != x.shape:
                raise RuntimeError(f"{func.name}.backward: gradient of shape {gx.shape} for an input of shape {x.shape}")
            if gx.dtype != x.dtype:
                gx = gx.astype(x.dtype)
            if x.creator is None:
                x._accumulate_grad(gx)
            else:
                entry = grads.get(id(x))
                if entry is None:
                    grads[id(x)] = [x, gx]
                else:
                    entry[1] = entry[1] + gx
                push(x.creator)
        if not retain_graph:
            func.release()
