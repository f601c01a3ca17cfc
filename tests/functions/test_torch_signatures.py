"""PyTorch's positional arguments: every function, layer and optimizer sharing a name with PyTorch takes them
in PyTorch's order with PyTorch's defaults. (Values, gradients, return types and dtypes of every op are compared
with PyTorch in the op table: tests/functions/op_cases.py, run by test_op_table.py.) Skipped without torch.
"""
import inspect

import pytest

import minidl.functions as F

torch = pytest.importorskip("torch")


def _positional(fn):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    return [(p.name, p.default) for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]


# Where a positional slot of torch's is deliberately absent here (keyword-only instead, so that a positional call
# fails loudly rather than meaning something else), with the reason.
SIGNATURE_DIFFERENCES = {
    "F.cross_entropy": "torch's slots after weight are the deprecated size_average and reduce: keyword-only here",
    "F.mse_loss": "torch's third slot is the deprecated size_average: reduction is keyword-only here",
    "nn.MSELoss": "torch's first slots are the deprecated size_average and reduce: reduction is keyword-only here",
    "nn.CrossEntropyLoss": "as F.cross_entropy",
    "nn.LocalResponseNorm": "alpha_over_size is minidl's, after torch's four arguments",
}


def test_signatures_match_pytorch():
    """Every function, layer and optimizer that shares a name with PyTorch takes PyTorch's positional arguments
    in PyTorch's order with PyTorch's defaults (as far as it goes), so a positional call never means
    something else here. Torch functions without a Python signature (builtins) are compared in the table."""
    from minidl import nn, optim
    pairs = [(f"F.{n}", getattr(F, n), getattr(torch.nn.functional, n, None) or getattr(torch, n, None))
             for n in F.__all__]
    pairs += [(f"nn.{n}", getattr(nn, n), getattr(torch.nn, n, None)) for n in nn.__all__
              if n not in ("Module", "Parameter", "init")]
    pairs += [(f"optim.{n}", getattr(optim, n), getattr(torch.optim, n, None)) for n in ("SGD", "Adam", "AdamW")]
    compared, problems = 0, []
    for label, ours, theirs in pairs:
        mine, ref = _positional(ours), _positional(theirs) if theirs is not None else None
        if mine is None or ref is None or label in SIGNATURE_DIFFERENCES:
            continue
        compared += 1
        for (name, default), (tname, tdefault) in zip(mine, ref):
            if name != tname:
                problems.append(f"{label}: positional {name!r} where torch has {tname!r}")
                break
            if default is not tdefault and tdefault is not inspect.Parameter.empty and \
                    default is not inspect.Parameter.empty and default != tdefault:
                problems.append(f"{label}: {name}={default!r}, torch {tdefault!r}")
    assert compared >= 20
    assert not problems, "\n".join(problems)
