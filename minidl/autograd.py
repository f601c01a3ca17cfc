"""The backward pass: grad mode and reverse-mode traversal of the define-by-run graph.

A graph is made of tensors (``.creator`` points at the Function that produced them) and Functions
(``.inputs`` holds the tensors they read, ``.outputs`` weak references to the tensors they made). Each
Function has a *generation*, one more than the newest of its inputs, so processing Functions from the
highest generation down visits every Function after all of its consumers: a topological order found
without recursion (ResNet-152 and DenseNet-201 graphs are thousands of nodes deep).

The interface this module uses, and nothing else (``minidl/tensor.py`` defines both sides):

- of a tensor: ``creator``, ``requires_grad``, ``retains_grad`` (keep .grad on a non-leaf), and
  ``accumulate_grad(g)``, the one way a gradient is written to ``.grad``;
- of a Function: ``inputs``, ``outputs``, ``output_meta``, ``generation``, ``sequence``, ``name``, and the
  methods ``check_versions()``, ``backward(*arrays)``, ``backward_graph(*tensors)`` (with
  ``create_graph``), ``zero_grad_output(i, as_tensor)`` and ``release()``.
"""
import contextlib
import heapq
import threading

from minidl.performance import guarded  # the thread policy while backward runs (minidl/performance.py)

class _GradMode(threading.local):
    enabled = True      # each thread starts in grad mode; a class default, read without a failed lookup


_state = _GradMode()


def is_grad_enabled():
    """False inside ``with minidl.no_grad():``."""
    return _state.enabled


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


@guarded
def run_backward(roots, root_grads, retain_graph=False, create_graph=False, inputs=None):
    """Propagate ``root_grads`` back from ``roots`` (a tensor and its gradient, or lists of them).

    First order (``create_graph=False``, what ``loss.backward()`` does): gradients are arrays, each
    Function's ``backward`` runs on them, and leaf gradients accumulate into ``leaf.grad``; intermediate
    gradients are dropped as soon as the Function that needs them has run.

    ``create_graph=True``: gradients are Tensors and each Function's ``backward_graph`` runs instead, with
    grad mode on, so the backward pass is itself recorded as a graph (a leaf's new ``.grad`` has a creator,
    and can be differentiated again: Hessian-vector products, gradient penalties, Newton's method).

    ``inputs`` (what ``minidl.grad`` passes): return the list of the gradients reaching these tensors
    (None where none reaches) instead of touching any ``.grad``; only the Functions that lie on a path from
    a root to one of them run.

    Unless ``retain_graph``, every Function visited releases the arrays it saved, so a training loop's
    memory does not grow with the number of steps.
    """
    if not isinstance(roots, (list, tuple)):
        roots, root_grads = [roots], [root_grads]
    if create_graph:
        with enable_grad():
            return _traverse(roots, root_grads, retain_graph, True, inputs)
    return _traverse(roots, root_grads, retain_graph, False, inputs)


def _needed(roots, targets):
    """The ids of the Functions on a path from a root to a tensor in ``targets`` (ids of tensors)."""
    funcs, stack, seen = [], [r.creator for r in roots if r.creator is not None], set()
    while stack:
        func = stack.pop()
        if id(func) in seen:
            continue
        seen.add(id(func))
        if func.inputs is None:   # freed: no path runs through it (an error below if a root's creator)
            if any(r.creator is func for r in roots):
                raise RuntimeError(f"grad: the graph through {func.name} was already freed by an earlier "
                                   "backward(); pass retain_graph=True the first time to differentiate twice")
            continue
        funcs.append(func)
        stack.extend(x.creator for x in func.inputs if x.creator is not None)
    needed = set()
    for func in sorted(funcs, key=lambda f: f.generation):  # inputs' creators come first
        if any(id(x) in targets or (x.creator is not None and id(x.creator) in needed) for x in func.inputs):
            needed.add(id(func))
    return needed


def _traverse(roots, root_grads, retain_graph, create_graph, inputs):
    capture = inputs is not None
    if capture:
        targets = {id(x): i for i, x in enumerate(inputs)}
        captured = [None] * len(inputs)
        needed = _needed(roots, targets)

    # id(tensor) -> [tensor, gradient]: holding the tensor keeps its weak reference in its creator alive
    grads = {}
    heap = []
    seen = set()

    def push(func):
        # Ties between Functions of one generation go to the newer one (its creation number): a fixed
        # order, so gradient contributions are summed the same way in every run.
        if id(func) not in seen:
            seen.add(id(func))
            heapq.heappush(heap, (-func.generation, -func.sequence, func))

    def send(x, g):
        """A gradient ``g`` reaches tensor ``x``: into a leaf's .grad (or minidl.grad's result), or summed
        with x's other gradients until x.creator, queued here, runs."""
        if capture:
            i = targets.get(id(x))
            if i is not None:
                captured[i] = g if captured[i] is None else captured[i] + g
            if x.creator is None or id(x.creator) not in needed:
                return
        elif x.creator is None:
            x.accumulate_grad(g)
            return
        entry = grads.get(id(x))
        if entry is None:
            grads[id(x)] = [x, g]
        else:
            entry[1] = entry[1] + g
        push(x.creator)

    for root, root_grad in zip(roots, root_grads):
        send(root, root_grad)
    while heap:
        _, _, func = heapq.heappop(heap)
        func_inputs = func.inputs    # a list built on each read (stand-ins for freed outputs): read once
        if func_inputs is None:
            raise RuntimeError(
                f"backward: the graph through {func.name} was already freed by an earlier backward(); "
                "call backward(retain_graph=True) the first time to backpropagate twice")
        func.check_versions()
        gys = []
        for i in range(len(func.outputs)):
            out = func.output(i, create=False)
            entry = grads.pop(id(out), None) if out is not None else None
            gy = entry[1] if entry is not None else None
            if gy is None:
                gy = func.zero_grad_output(i, create_graph)
            elif out.retains_grad and not capture:
                out.accumulate_grad(gy)
            gys.append(gy)
        gxs = func.backward_graph(*gys) if create_graph else func.backward(*gys)
        if not isinstance(gxs, tuple):
            gxs = (gxs,)
        if len(gxs) != len(func_inputs):
            which = "backward_graph" if create_graph else "backward"
            raise RuntimeError(f"{func.name}.{which} returned {len(gxs)} gradients for {len(func_inputs)} inputs")
        for x, gx in zip(func_inputs, gxs):
            if gx is None or not x.requires_grad:
                continue
            if gx.shape != x.shape:
                raise RuntimeError(f"{func.name}.backward: gradient of shape {gx.shape} for an input of shape {x.shape}")
            if gx.dtype != x.dtype:
                gx = gx.to(dtype=x.dtype) if create_graph else gx.astype(x.dtype)
            send(x, gx)
        if not retain_graph:
            func.release()
    return captured if capture else None


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """:func:`minidl.grad` under PyTorch's other name for it, ``torch.autograd.grad`` (defined beside Tensor in
    ``minidl/tensor.py``, which builds the Tensors it returns)."""
    from minidl.tensor import grad as tensor_grad
    return tensor_grad(outputs, inputs, grad_outputs, retain_graph=retain_graph, create_graph=create_graph,
                       allow_unused=allow_unused)
