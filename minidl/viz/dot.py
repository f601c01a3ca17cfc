"""The autograd graph behind a tensor, as Graphviz DOT text.

Walks back from a tensor through ``.creator`` (the Function that made it) and each Function's
``.inputs`` (the tensors it read), the same links ``backward`` follows (minidl.autograd). Two kinds of
node, as in the notes' computational-graph figures:

    tensor     ellipse  "name\\n(N, C, H, W) float32": the output (yellow), parameters named by their
                        module path (``features.0.weight``, green), other leaves (inputs, constants)
    Function   box      its class name (``Conv2d``, ``ReLU``, ``Add``)

with an edge from each input tensor to the Function that read it and from each Function to the
tensor it made. Every Function output that some later Function read (or the root) is a node; outputs
nobody read (max pooling's indices) are not drawn.

The DOT text needs nothing; drawing it needs Graphviz's ``dot`` program. Draw the graph before calling
``backward()``: backward frees the graph (unless ``retain_graph=True``), and a freed Function is drawn
as a grey box with no inputs.
"""
import shutil
import subprocess

from minidl.tensor import Tensor

HINT = ("drawing a graph needs Graphviz's dot program (apt install graphviz, brew install graphviz or "
        "conda install graphviz); the DOT text is in .source")


class Digraph:
    """DOT text with the few methods a notebook needs: ``.source``, ``render(path)``, ``_repr_svg_``.

    ``nodes`` maps each node id to its label and ``edges`` lists (from id, to id) pairs, for tests and for
    readers who want the structure without parsing DOT.
    """

    def __init__(self, nodes, kinds, edges):
        self.nodes, self.kinds, self.edges = nodes, kinds, edges

    @property
    def source(self):
        style = {"output": 'shape=ellipse, style=filled, fillcolor="#fff2a8"',
                 "parameter": 'shape=ellipse, style=filled, fillcolor="#c8e6c9"',
                 "tensor": "shape=ellipse",
                 "function": 'shape=box, style=filled, fillcolor="#dfe8f5"',
                 "freed": 'shape=box, style=filled, fillcolor="#dddddd"'}
        lines = ["digraph autograd {", '  graph [rankdir=TB]; node [fontname="Helvetica", fontsize=10];']
        for node, label in self.nodes.items():
            lines.append(f'  {node} [label="{_escape(label)}", {style[self.kinds[node]]}];')
        lines.extend(f"  {a} -> {b};" for a, b in self.edges)
        lines.append("}")
        return "\n".join(lines) + "\n"

    def __str__(self):
        return self.source

    def __repr__(self):
        functions = sum(kind in ("function", "freed") for kind in self.kinds.values())
        tensors = len(self.nodes) - functions
        drawn = "" if dot_available() else f"; {HINT}"
        return f"<autograd graph: {functions} functions, {tensors} tensors, {len(self.edges)} edges{drawn}>"

    def pipe(self, format="svg"):
        """The drawing as bytes (``dot -T<format>``); RuntimeError with the install hint without ``dot``."""
        dot = shutil.which("dot")
        if dot is None:
            raise RuntimeError(f"viz.graph: {HINT}")
        done = subprocess.run([dot, f"-T{format}"], input=self.source.encode("utf-8"), capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"viz.graph: dot failed: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout

    def render(self, path, format=None):
        """Draw to ``path``; the format is its suffix (``graph.svg``, ``graph.png``) unless given.
        ``path.dot`` writes the DOT text itself and needs no Graphviz."""
        path = str(path)
        format = format or (path.rsplit(".", 1)[-1] if "." in path else "svg")
        data = self.source.encode("utf-8") if format in ("dot", "gv") else self.pipe(format)
        try:
            with open(path, "wb") as f:
                f.write(data)
        except OSError as error:
            raise OSError(f"viz.graph: cannot write {path}: {error.strerror or error}") from None
        return path

    def _repr_svg_(self):
        """Jupyter draws the SVG when ``dot`` exists; otherwise None, and it prints the repr (with the hint)."""
        return self.pipe("svg").decode("utf-8") if dot_available() else None


def dot_available():
    return shutil.which("dot") is not None


def _escape(text):
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _parameter_names(params):
    if params is None:
        return {}
    items = params.named_parameters() if hasattr(params, "named_parameters") else params.items()
    return {id(tensor): name for name, tensor in items}


def _tensor_label(tensor, name):
    shape = "(" + ", ".join(str(d) for d in tensor.shape) + ("," if tensor.ndim == 1 else "") + ")"
    return f"{name}\n{shape} {tensor.dtype}" if name else f"{shape} {tensor.dtype}"


def graph(tensor, params=None):
    """The autograd graph that produced ``tensor`` (see the module docstring for what is drawn).

    ``params``: a Module (its ``named_parameters()``) or a dict name -> tensor, to name the leaves.

    >>> model = nn.Linear(3, 2)
    >>> g = viz.graph(model(minidl.randn(4, 3)).sum(), params=model)
    >>> print(g.source)          # digraph autograd { ... "weight\\n(2, 3) float32" ... }
    >>> g.render("graph.svg")    # with Graphviz installed; in Jupyter, ``g`` alone draws it
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"viz.graph: expected a Tensor, got {type(tensor).__name__}")
    names = _parameter_names(params)
    ids, nodes, kinds, edges, edge_set = {}, {}, {}, [], set()

    def node(obj, label, kind):
        """The node id of ``obj`` and whether it is new."""
        key = id(obj)
        if key in ids:
            return ids[key], False
        ids[key] = f"n{len(ids)}"
        nodes[ids[key]], kinds[ids[key]] = label, kind
        return ids[key], True

    def edge(a, b):
        if (a, b) not in edge_set:                 # x * x reads x twice: one edge
            edge_set.add((a, b))
            edges.append((a, b))

    root, _ = node(tensor, _tensor_label(tensor, names.get(id(tensor), "")), "output")
    stack = [(tensor, root)]
    while stack:                                   # iterative: deep nets are thousands of nodes deep
        t, t_node = stack.pop()
        function = t.creator
        if function is None:
            continue
        freed = getattr(function, "inputs", None) is None
        f_node, new = node(function, function.name + (" (freed)" if freed else ""), "freed" if freed else "function")
        edge(f_node, t_node)
        if not new or freed:
            continue
        for x in function.inputs:
            name = names.get(id(x), "")
            x_node, new = node(x, _tensor_label(x, name), "parameter" if name else "tensor")
            edge(x_node, f_node)
            if new:
                stack.append((x, x_node))
    return Digraph(nodes, kinds, edges)
