"""Model files build on ``minidl.nn``, ``minidl.functions`` and minidl's public API (``minidl.manual_seed``,
``minidl.default_rng``, ...), never on the core's modules (STYLE.md, "Layering: one direction only")."""
import ast
from pathlib import Path

import minidl.models

CORE = ("minidl.random", "minidl.tensor", "minidl.autograd", "minidl.ops", "minidl.creation", "minidl.backend",
        "minidl.kernels")


def _dotted_names(tree):
    """Every module a file imports (with each imported name appended) and every dotted attribute it reads."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute):
            yield ast.unparse(node)


def test_no_model_file_reaches_into_the_core():
    folder = Path(minidl.models.__file__).parent
    offences = sorted({f"{path.name}: {name}" for path in folder.glob("*.py")
                       for name in _dotted_names(ast.parse(path.read_text()))
                       if any(name == core or name.startswith(core + ".") for core in CORE)})
    assert not offences, offences


def test_the_check_sees_an_offence():
    tree = ast.parse("from minidl.random import default_rng\nimport minidl\nminidl.random.default_rng()")
    assert {"minidl.random", "minidl.random.default_rng"} <= set(_dotted_names(tree))
