"""viz.graph: the DOT graph of a small net has exactly the expected nodes and edges."""
from collections import Counter

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn, viz
from minidl.viz import dot as graph_module


def labelled_edges(g):
    return Counter((g.nodes[a], g.nodes[b]) for a, b in g.edges)


def test_graph_of_a_two_layer_net_has_exactly_the_expected_nodes_and_edges():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    y = model(minidl.randn(5, 3)).sum()
    g = viz.graph(y, params=model)
    assert Counter(g.nodes.values()) == Counter({
        "(5, 3) float32": 1, "0.weight\n(4, 3) float32": 1, "0.bias\n(4,) float32": 1,
        "2.weight\n(2, 4) float32": 1, "2.bias\n(2,) float32": 1,
        "(5, 4) float32": 2, "(5, 2) float32": 1, "() float32": 1,
        "Linear": 2, "ReLU": 1, "Sum": 1})
    assert labelled_edges(g) == Counter({
        ("(5, 3) float32", "Linear"): 1, ("0.weight\n(4, 3) float32", "Linear"): 1,
        ("0.bias\n(4,) float32", "Linear"): 1, ("Linear", "(5, 4) float32"): 1,
        ("(5, 4) float32", "ReLU"): 1, ("ReLU", "(5, 4) float32"): 1,
        ("(5, 4) float32", "Linear"): 1, ("2.weight\n(2, 4) float32", "Linear"): 1,
        ("2.bias\n(2,) float32", "Linear"): 1, ("Linear", "(5, 2) float32"): 1,
        ("(5, 2) float32", "Sum"): 1, ("Sum", "() float32"): 1})
    assert len(g.edges) == 12 and len(g.nodes) == 13
    kinds = Counter(g.kinds.values())
    assert kinds == Counter({"function": 4, "parameter": 4, "tensor": 4, "output": 1})


def test_dot_source_declares_every_node_once_and_every_edge():
    x = minidl.randn(2, 2, dtype="float64", requires_grad=True)
    g = viz.graph((x * x + x).sum(), params={"x": x})
    lines = g.source.splitlines()
    assert lines[0] == "digraph autograd {" and lines[-1] == "}"
    declared = [line.split()[0] for line in lines if "[label=" in line]
    assert sorted(declared) == sorted(g.nodes) and len(set(declared)) == len(declared)
    arrows = [tuple(line.strip(" ;").split(" -> ")) for line in lines if "->" in line]
    assert arrows == g.edges
    assert 'label="x\\n(2, 2) float64"' in g.source
    # x * x reads x twice but is one edge; Add reads x and x*x
    assert labelled_edges(g)[("x\n(2, 2) float64", "Mul")] == 1
    assert labelled_edges(g)[("x\n(2, 2) float64", "Add")] == 1


def test_a_leaf_alone_is_one_node_and_a_freed_graph_says_so():
    x = minidl.ones(3, requires_grad=True)
    assert viz.graph(x).nodes == {"n0": "(3,) float32"} and viz.graph(x).edges == []
    y = (F.relu(x) * 2).sum()
    y.backward()
    g = viz.graph(y)
    assert list(g.nodes.values()) == ["() float32", "Sum (freed)"] and g.kinds["n1"] == "freed"


def test_a_deep_graph_is_walked_without_recursion():
    x = minidl.ones(1, requires_grad=True)
    y = x
    for _ in range(3000):
        y = y * 1.0
    g = viz.graph(y)
    assert len([k for k in g.kinds.values() if k == "function"]) == 3000


def test_without_dot_render_and_svg_say_how_to_get_it_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(graph_module.shutil, "which", lambda name: None)
    g = viz.graph(minidl.ones(2, requires_grad=True).sum())
    assert g._repr_svg_() is None
    assert "install graphviz" in repr(g) and "\n" not in repr(g)
    with pytest.raises(RuntimeError, match=r"viz.graph: drawing a graph needs Graphviz's dot program"):
        g.render(tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    assert open(g.render(tmp_path / "g.dot")).read() == g.source     # DOT text needs no Graphviz


def test_render_draws_svg_with_dot(tmp_path):
    if not graph_module.dot_available():
        pytest.skip("Graphviz's dot program is not installed")
    g = viz.graph(minidl.ones(2, requires_grad=True).sum())
    assert g._repr_svg_().lstrip().startswith(("<?xml", "<svg"))
    with open(g.render(tmp_path / "g.png"), "rb") as f:
        assert f.read(4) == b"\x89PNG"


def test_bad_input_is_refused_in_words(tmp_path):
    with pytest.raises(TypeError, match="viz.graph: expected a Tensor, got ndarray"):
        viz.graph(np.ones(3))
    g = viz.graph(minidl.ones(2, requires_grad=True).sum())
    with pytest.raises(OSError, match="viz.graph: cannot write"):
        g.render(tmp_path / "missing" / "g.dot")
