"""Cheap input checks shared by the functions: fail in words, naming the op, what it expected and what it got."""
import numbers

from minidl.tensor import Tensor


def as_input(x, op):
    """Wrap arrays as Tensors and require a floating-point dtype."""
    if not isinstance(x, Tensor):
        x = Tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: expected a floating-point tensor, got dtype {x.dtype} "
                        f"(convert with .float() or minidl.tensor(..., dtype='float32'))")
    return x


def check_ndim(x, ndim, op, name="x", layout="N x C x H x W"):
    if x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D ({layout}), got shape {tuple(x.shape)}")


def pair(value, op, name, minimum=None):
    """Turn an int or a pair of ints into a pair, checking ``value >= minimum``: the one parser of kernel
    sizes, strides, paddings and dilations for minidl.functions and minidl.nn.

    Not an int or a pair of ints (a float, a string, three values): TypeError. Below ``minimum``: ValueError.
    """
    if type(value) is tuple and len(value) == 2 and type(value[0]) is int and type(value[1]) is int:
        pass        # the common case (a layer's stored pair), checked first: this runs on every call
    elif isinstance(value, numbers.Integral):
        value = (int(value), int(value))
    elif (isinstance(value, str) or not hasattr(value, "__len__") or len(value) != 2
          or not all(isinstance(v, numbers.Integral) for v in value)):
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    else:
        value = (int(value[0]), int(value[1]))
    if minimum is not None and min(value) < minimum:
        relation = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{op}: {name} must be {relation}, got {value if value[0] != value[1] else value[0]}")
    return value


def check_same_device(op, *tensors):
    devices = {t.device for t in tensors if t is not None}
    if len(devices) > 1:
        raise RuntimeError(f"{op}: inputs are on different devices ({', '.join(sorted(devices))}); move them with .to()")
