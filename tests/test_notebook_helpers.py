"""What a notebook user meets: the HTML summary, Tensor's repr, the progress bar's front end, the
one-time "compiling" line."""
import io
import os
import sys
import types
from html.parser import HTMLParser

import numpy as np
import pytest
from numba import njit
from numba.core import event

import minidl
from minidl.kernels.compile_notice import MESSAGE, FirstCompileNotice
from minidl.models import get_model
from minidl.training import loop


class Cells(HTMLParser):
    """Text of every <th>/<td>, row by row."""

    def __init__(self):
        super().__init__()
        self.rows, self.cell = [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = ""

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self.rows[-1].append(self.cell)
            self.cell = None


def test_summary_renders_in_jupyter_as_an_html_table_of_the_same_rows():
    summary = minidl.summary(get_model("lenet5"), (1, 32, 32))
    parser = Cells()
    parser.feed(summary._repr_html_())
    assert parser.rows[0] == ["Layer (type)", "Output shape", "Params", "Mult-adds", "Activations"]
    assert parser.rows[1] == ["c1 (Conv2d)", "6x28x28", "156", "117,600", "18.82 kB"]   # LeCun et al. 1998
    assert [row[0] for row in parser.rows[1:8]] == [line.split()[0] + " " + line.split()[1]
                                                     for line in str(summary).splitlines()[3:10]]
    assert ["Total params", "60,000"] in parser.rows
    assert "Total params:         60,000" in str(summary) and "<" not in str(summary)


def test_summary_html_escapes_names():
    class Odd(minidl.nn.Module):
        def forward(self, x):
            return x

    Odd.__name__ = "Odd<b>"
    assert "Odd&lt;b&gt;" in minidl.summary(Odd(), (1, 2, 2))._repr_html_()


@pytest.mark.parametrize("make, expected", [
    (lambda: minidl.tensor([1.5, 2.0]), "tensor([1.5, 2. ])"),
    (lambda: minidl.tensor([1, 2]), "tensor([1, 2])"),                                   # int64: default
    (lambda: minidl.tensor([1.0], dtype="float64", requires_grad=True),
     "tensor([1.], dtype=float64, requires_grad=True)"),
    (lambda: minidl.tensor([1.0, 2.0], requires_grad=True) * 2, "tensor([2., 4.], grad_fn=<Mul>)"),
    (lambda: minidl.zeros(0, 3), "tensor([], shape=(0, 3))"),                           # PyTorch: size=(0, 3)
    (lambda: minidl.tensor([np.inf, -np.inf, np.nan]), "tensor([ inf, -inf,  nan])"),
    (lambda: minidl.tensor([1 / 3]), "tensor([0.3333])"),                               # PyTorch's 4 digits
])
def test_tensor_repr_reads_like_pytorchs(make, expected):
    assert repr(make()) == expected


def test_tensor_repr_of_elided_values_states_the_shape():
    text = repr(minidl.zeros(8, 3, 32, 32))
    assert "..." in text and text.endswith("shape=(8, 3, 32, 32))")
    assert "shape=" not in repr(minidl.zeros(6, 10))                                  # 60 values: all shown


def test_progress_bars_use_tqdms_notebook_aware_front_end_and_show_in_jupyter_by_default(monkeypatch):
    from tqdm.auto import tqdm
    assert loop.tqdm is tqdm
    trainer = loop.Trainer.__new__(loop.Trainer)
    trainer.progress = None
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not loop.in_jupyter() and trainer.progress_disabled is None        # a terminal decides
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    assert loop.in_jupyter() and trainer.progress_disabled is False           # Jupyter: shown
    trainer.progress = False
    assert trainer.progress_disabled is True
    shell.config = {}                                                        # plain IPython in a terminal
    trainer.progress = None
    assert not loop.in_jupyter() and trainer.progress_disabled is None


def test_the_first_compilation_of_a_minidl_kernel_is_announced_once():
    stream = io.StringIO()
    notice = FirstCompileNotice(stream)
    event.register("numba:compile", notice)
    try:
        def other(x):
            return x + 1

        njit(other)(1)                                   # not a minidl kernel: nothing said
        assert stream.getvalue() == ""

        def kernel(x):
            return x * 2

        kernel.__module__ = "minidl.kernels.cpu"
        compiled = njit(kernel)
        compiled(1)
        compiled(1.5)                                    # a second signature compiles again: still one line
        compiled(2)                                      # already compiled: no event at all
    finally:
        event.unregister("numba:compile", notice)
    from numba.core import config
    assert stream.getvalue().splitlines() == [MESSAGE.format(config.CACHE_DIR)]
