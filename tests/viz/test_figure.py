"""Figures show themselves in Jupyter without pyplot: a PNG formatter is registered on first use."""
import sys
import types

import pytest

from minidl import nn, viz


def test_first_picture_registers_a_png_display_for_figures_in_ipython(monkeypatch):
    pytest.importorskip("matplotlib")
    formatters = pytest.importorskip("IPython.core.formatters")
    shell = types.SimpleNamespace(display_formatter=formatters.DisplayFormatter())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    figure = viz.filters(nn.Conv2d(3, 4, 3))
    data, _ = shell.display_formatter.format(figure)
    assert data["image/png"][:4] == b"\x89PNG"


def test_outside_ipython_nothing_is_registered(monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert viz.filters(nn.Conv2d(3, 4, 3)).axes
