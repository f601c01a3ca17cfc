"""What a model costs, layer by layer: ``summary`` (shapes, parameters, multiply-adds, activation memory)
and ``receptive_field`` (how much of the input each layer's units see).

    >>> from minidl.models import get_model
    >>> print(summary(get_model("lenet5"), (1, 32, 32)))

Both run the model once, in eval mode, under ``minidl.no_grad()``, on zeros with a batch of 1, and
record every module call with forward hooks; figures are therefore per image.

Multiply-adds (MACs), per image, one multiply and one add counted as one:

    Conv2d           K * (C / groups) * KH * KW * OH * OW        (bias adds not counted)
    ConvTranspose2d  C * (K / groups) * KH * KW * H * W          (each input pixel scatters a kernel)
    Linear           in_features * out_features (* any extra leading dims besides the batch)
    BatchNorm        0, or one per output element with ``count_bn=True`` (at inference BN folds into
                     the preceding convolution's weights, so it is free)
    anything else    0: pooling, ReLU, LRN, dropout, concatenation are comparisons or elementwise
                     work, not multiply-adds

A module can state its own cost by defining ``macs(input_shape, output_shape) -> int`` (shapes with
the batch dimension of 1); LeNet's trainable subsampling and RBF layers do.

Activation memory is the bytes of each leaf module's output (a leaf has no submodules), unless the
output is its input or a view of it (eval-mode dropout, Identity, Flatten): that costs nothing. The
total is what a forward pass keeps alive for the backward pass in minidl, where every layer (ReLU
included) makes a new array; a framework with in-place ReLU keeps less. Outputs of functional calls
inside a ``forward`` (``F.concat``, ``F.relu``) are not module outputs and are not counted; the input
is reported separately.
"""
import html

import numpy as np

from minidl import autograd
from minidl import nn
from minidl.creation import zeros
from minidl.functions.conv import string_padding
from minidl.tensor import Tensor

__all__ = ["LayerRow", "ModelSummary", "ReceptiveField", "layer_macs", "receptive_field", "summary"]


def _shapes(output):
    """The shapes of the tensors in a module's output (a tensor, or a tuple such as (y, indices))."""
    if isinstance(output, Tensor):
        return [tuple(output.shape)]
    if isinstance(output, (tuple, list)):
        return [s for item in output for s in _shapes(item)]
    return []


def _tensors(value):
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def _new_bytes(inputs, output):
    """Bytes of the output arrays that are not views of an input (eval-mode dropout, Identity and
    flatten hand back their input or a view of it: no new memory)."""
    ins = [t.data for t in _tensors(inputs)]
    total = 0
    for t in _tensors(output):
        a = t.data
        shared = any(a is b or (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.may_share_memory(a, b))
                     for b in ins)
        total += 0 if shared else int(a.nbytes)
    return total


def layer_macs(module, input_shape, output_shape, count_bn=False):
    """Multiply-adds of one call of ``module`` (per the table in the module docstring); shapes include
    the batch dimension, and the result is divided by it."""
    n = max(int(output_shape[0]), 1)
    if hasattr(module, "macs") and callable(module.macs):
        return int(module.macs(input_shape, output_shape))
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        K, OH, OW = output_shape[1:]
        return int(K * (module.in_channels // module.groups) * kh * kw * OH * OW)
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        C, H, W = input_shape[1:]
        return int(C * (module.out_channels // module.groups) * kh * kw * H * W)
    if isinstance(module, nn.Linear):
        return int(np.prod(output_shape) // n * module.in_features)
    if count_bn and isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return int(np.prod(output_shape) // n)
    return 0


class LayerRow:
    """One module call: ``name`` (dotted, as in ``named_modules``), ``type``, ``depth`` (1 for a child of
    the model), ``output_shape`` (batch of 1), ``params`` (the module's, submodules included),
    ``macs`` (its own and its submodules'), ``activations`` / ``activation_bytes`` (its output), and
    ``is_leaf``."""

    def __init__(self, name, module, depth):
        self.name, self.module, self.depth = name, module, depth
        self.type = type(module).__name__
        self.is_leaf = not any(True for _ in module.children())
        self.params = sum(p.numel() for p in module.parameters())
        self.input_shape = self.output_shape = None
        self.output_shapes = []
        self.macs = 0
        self.activations = self.activation_bytes = 0

    def __repr__(self):
        return (f"LayerRow({self.name!r}, {self.type}, output {self.output_shape}, params {self.params:,}, "
                f"macs {self.macs:,})")


def _human(n, unit=""):
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= factor:
            return f"{n / factor:.2f} {prefix}{unit}"
    return f"{n:g} {unit}".rstrip()


class ModelSummary:
    """The result of :func:`summary`. ``str()`` gives the table; the numbers are attributes:

    ``rows`` (a :class:`LayerRow` per module call, in call order, parents before their children),
    ``total_params``, ``trainable_params``, ``non_trainable_params``, ``total_macs``,
    ``total_activations`` and ``activation_bytes`` (sums over leaf rows), ``input_bytes``,
    ``param_bytes``, ``input_shape``, ``output_shape``.
    """

    def __init__(self, model_name, rows, params, input_shape, input_bytes, output_shape, depth):
        self.model_name, self.rows, self.depth = model_name, rows, depth
        self.input_shape, self.input_bytes, self.output_shape = input_shape, input_bytes, output_shape
        self.total_params = sum(p.numel() for p in params)
        self.trainable_params = sum(p.numel() for p in params if p.requires_grad)
        self.non_trainable_params = self.total_params - self.trainable_params
        self.param_bytes = sum(int(p.data.nbytes) for p in params)
        leaves = [r for r in rows if r.is_leaf]
        self.total_macs = sum(r.macs for r in rows if r.depth == 1)
        self.total_activations = sum(r.activations for r in leaves)
        self.activation_bytes = sum(r.activation_bytes for r in leaves)

    def row(self, name):
        """The first row of the module called ``name`` (e.g. ``"features.0"``)."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"summary: no module named {name!r} was called")

    HEADER = ("Layer (type)", "Output shape", "Params", "Mult-adds", "Activations")

    def _table(self):
        """The shown rows (depth <= self.depth) as (depth, label, shape, params, mult-adds, activations)."""
        table = []
        for r in self.rows:
            if r.depth > self.depth:
                continue
            shape = "x".join(str(d) for d in r.output_shape[1:]) if r.output_shape else "-"
            table.append((r.depth, f"{r.name.rsplit('.', 1)[-1]} ({r.type})", shape,
                          f"{r.params:,}" if r.params else "-", f"{r.macs:,}" if r.macs else "-",
                          _human(r.activation_bytes, "B")))
        return table

    def _totals(self):
        return [
            ("Total params", f"{self.total_params:,}"),
            ("Trainable params", f"{self.trainable_params:,}"),
            ("Non-trainable params", f"{self.non_trainable_params:,}"),
            ("Total mult-adds", f"{self.total_macs:,} ({_human(self.total_macs)})"),
            ("Input size", _human(self.input_bytes, "B")),
            ("Forward activations", f"{self.total_activations:,} values, {_human(self.activation_bytes, 'B')} "
                                    "per image (outputs of every leaf layer)"),
            ("Params size", _human(self.param_bytes, "B")),
        ]

    def _title(self):
        return (f"{self.model_name}: input {'x'.join(map(str, self.input_shape[1:]))}, "
                f"output {'x'.join(map(str, self.output_shape[1:]))}")

    def __str__(self):
        header = self.HEADER
        lines = [("  " * (depth - 1) + label, *cells) for depth, label, *cells in self._table()]
        widths = [max(len(row[i]) for row in lines + [header]) for i in range(5)]
        rule = "-" * (sum(widths) + 8)

        def fmt(row):
            return "  ".join([row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])])

        out = [rule, fmt(header), rule] + [fmt(row) for row in lines] + [rule, self._title()]
        out += [f"{label + ':':<22}{value}" for label, value in self._totals()] + [rule]
        return "\n".join(out)

    def _repr_html_(self):
        """The same table as ``str()``, as HTML: Jupyter shows this; a terminal prints the text."""
        def cell(tag, text, align="right", indent=0):
            style = f"text-align:{align}; font-family:monospace; padding:1px 8px 1px {8 + 16 * indent}px"
            return f'<{tag} style="{style}">{html.escape(text)}</{tag}>'

        head = cell("th", self.HEADER[0], "left") + "".join(cell("th", h) for h in self.HEADER[1:])
        body = "".join("<tr>" + cell("td", label, "left", depth - 1) + "".join(cell("td", c) for c in cells) + "</tr>"
                       for depth, label, *cells in self._table())
        totals = "".join("<tr>" + cell("td", label, "left") + cell("td", value, "left") + "</tr>"
                         for label, value in self._totals())
        return (f"<div><b>{html.escape(self._title())}</b><table><thead><tr>{head}</tr></thead>"
                f"<tbody>{body}</tbody></table><table>{totals}</table></div>")

    __repr__ = __str__


def _input(model, shape, dtype):
    """Zeros of ``shape`` on the device of the model's parameters."""
    device = next((p.device for p in model.parameters()), None)
    return zeros(tuple(shape), dtype=dtype, device=device)


def _record_calls(model, x):
    """Run ``model(x)`` with hooks on every module; return (rows in call order, the model's output)."""
    names = {id(m): name for name, m in model.named_modules()}
    names[id(model)] = names[id(model)] or type(model).__name__
    skip_root = any(True for _ in model.children())  # a bare layer is its own only row
    rows, stack, handles = [], [], []

    def pre_hook(module, inputs):
        if module is model and skip_root:
            return None
        row = LayerRow(names[id(module)], module, len(stack) + 1)
        first = inputs[0] if inputs and isinstance(inputs[0], Tensor) else None
        row.input_shape = tuple(first.shape) if first is not None else None
        row.input_tensor = first
        rows.append(row)
        stack.append(row)
        return None

    def post_hook(module, inputs, output):
        if module is model and skip_root:
            return None
        row = stack.pop()
        shapes = _shapes(output)
        row.output_shapes = shapes
        row.output_shape = shapes[0] if shapes else None
        row.output_tensor = output
        row.activation_bytes = _new_bytes(inputs, output)
        row.activations = sum(int(t.data.size) for t in _tensors(output)) if row.activation_bytes else 0
        return None

    for m in model.modules():
        handles.append(m.register_forward_pre_hook(pre_hook))
        handles.append(m.register_forward_hook(post_hook))
    was_training = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with autograd.no_grad():
            output = model(x)
    finally:
        for h in handles:
            h.remove()
        for m, mode in was_training:
            object.__setattr__(m, "training", mode)
    return rows, output


def summary(model, input_shape, depth=3, dtype="float32", count_bn=False):
    """Run ``model`` on one image of ``input_shape`` (no batch dimension, e.g. ``(3, 224, 224)``) and
    tabulate every module call; rows deeper than ``depth`` are hidden from the table (their numbers
    are in their parents' rows and in the totals). See the module docstring for the counting rules.

    >>> s = summary(get_model("alexnet"), (3, 227, 227))
    >>> s.row("features.0").output_shape, s.row("features.0").params
    ((1, 96, 55, 55), 34944)
    """
    x = _input(model, (1,) + tuple(input_shape), dtype)
    try:
        rows, output = _record_calls(model, x)
    except (ValueError, TypeError, RuntimeError, IndexError) as err:
        if len(tuple(input_shape)) == 4:
            raise ValueError(f"summary: input_shape excludes the batch dimension: {tuple(input_shape)} made a batch "
                             f"of shape {tuple(x.shape)}; pass {tuple(input_shape)[1:]} for images of that size "
                             f"({err})") from err
        raise
    for row in rows:  # own MACs, then add each row's total into its parent's (children come later)
        row.macs = layer_macs(row.module, row.input_shape, row.output_shape, count_bn) if row.output_shape else 0
    for i in range(len(rows) - 1, -1, -1):
        row = rows[i]
        parent = next((rows[j] for j in range(i - 1, -1, -1) if rows[j].depth < row.depth), None)
        if parent is not None and not (hasattr(parent.module, "macs") and callable(parent.module.macs)):
            parent.macs += row.macs
    for row in rows:  # drop the references to tensors
        row.input_tensor = row.output_tensor = None
    out_shapes = _shapes(output)
    return ModelSummary(type(model).__name__, rows, list(model.parameters()), tuple(x.shape),
                        int(x.data.nbytes), out_shapes[0] if out_shapes else (), depth)


class ReceptiveField:
    """The result of :func:`receptive_field`: ``rows`` of dicts with ``name``, ``type``, ``size`` (the
    output's H x W), ``rf`` (receptive field, in input pixels), ``jump`` (input pixels between
    neighbouring units) and ``start`` (centre of the first unit's field, in input coordinates);
    ``receptive_field`` is the last row's ``rf``. Sizes are (height, width) pairs."""

    def __init__(self, rows):
        self.rows = rows
        self.receptive_field = rows[-1]["rf"] if rows else (1, 1)
        self.jump = rows[-1]["jump"] if rows else (1, 1)

    def __str__(self):
        lines = [f"{'layer':<28}{'output':>10}{'receptive field':>18}{'jump':>8}{'start':>8}"]
        for r in self.rows:
            size = f"{r['size'][0]}x{r['size'][1]}"
            rf = f"{r['rf'][0]}x{r['rf'][1]}"
            lines.append(f"{r['name'] + ' (' + r['type'] + ')':<28}{size:>10}{rf:>18}{r['jump'][0]:>8}"
                         f"{r['start'][0]:>8.1f}")
        return "\n".join(lines)

    __repr__ = __str__


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def receptive_field(model_or_layers, input_size):
    """Receptive field and jump of every spatial layer of a chain of convolutions and poolings.

    ``model_or_layers`` is a Module or a list of layers (run in order); ``input_size`` is (C, H, W) or
    just H (square, channels taken from the first convolution). For each layer with a
    ``kernel_size`` (convolutions, poolings, LeNet's subsampling), with kernel k, stride s, padding p,
    dilation d, and the incoming jump j (input pixels between neighbouring units):

        rf_out = rf_in + (k - 1) * d * j          jump_out = j * s
        start_out = start_in + ((k - 1) / 2 * d - p) * j

    Layers without a kernel (ReLU, batch norm, LRN, dropout) change nothing; a global/adaptive average
    pool sees its whole input. A layer with a ``kernel_size`` is treated as one unit (its submodules
    are not walked). Branching models (Inception, Fire, residual blocks) are refused: two spatial
    layers reading the same tensor are parallel, and their receptive fields differ.

    >>> receptive_field([nn.Conv2d(8, 8, 3, padding=1) for _ in range(3)], (8, 32, 32)).receptive_field
    (7, 7)
    """
    model = nn.Sequential(*model_or_layers) if isinstance(model_or_layers, (list, tuple)) else model_or_layers
    if isinstance(input_size, int):
        first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
        channels = first_conv.in_channels if first_conv is not None else 1
        input_size = (channels, input_size, input_size)
    x = _input(model, (1,) + tuple(input_size), "float32")
    calls, _ = _record_calls(model, x)
    rf, jump, start = np.array([1, 1]), np.array([1, 1]), np.array([0.5, 0.5])
    rows, atomic_depth, inputs_seen = [], None, {}
    for call in calls:
        if atomic_depth is not None and call.depth > atomic_depth:
            continue                          # inside a layer already counted as one unit
        atomic_depth = None
        m = call.module
        spatial = hasattr(m, "kernel_size") or isinstance(m, nn.AdaptiveAvgPool2d)
        if not spatial:
            continue
        atomic_depth = call.depth
        key = id(call.input_tensor) if call.input_tensor is not None else None
        if key in inputs_seen:
            raise ValueError(f"receptive_field: {call.name} and {inputs_seen[key]} read the same tensor: the "
                             f"model branches, and a single receptive field per layer is not defined")
        inputs_seen[key] = call.name
        if isinstance(m, nn.AdaptiveAvgPool2d):
            in_hw = np.array(call.input_shape[2:])
            out_hw = np.array(call.output_shape[2:])
            k, s, p, d = -(-in_hw // out_hw), in_hw // out_hw, np.array([0, 0]), np.array([1, 1])
        else:
            k, s = np.array(_pair(m.kernel_size)), np.array(_pair(m.stride))
            padding = getattr(m, "padding", 0)
            if isinstance(padding, str):   # Conv2d's "same" or "valid": the padding at the top and left
                padding = string_padding(padding, m.kernel_size, m.stride, m.dilation)[0]
            p = np.array(_pair(padding))
            d = np.array(_pair(getattr(m, "dilation", 1)))
        start = start + ((k - 1) / 2 * d - p) * jump
        rf = rf + (k - 1) * d * jump
        jump = jump * s
        rows.append({"name": call.name, "type": call.type, "size": tuple(int(v) for v in call.output_shape[2:]),
                     "rf": tuple(int(v) for v in rf), "jump": tuple(int(v) for v in jump),
                     "start": tuple(float(v) for v in start)})
    for call in calls:
        call.input_tensor = call.output_tensor = None
    return ReceptiveField(rows)
