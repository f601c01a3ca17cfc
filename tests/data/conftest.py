"""Set-up for the data tests: no network, and a private cache directory per test."""
import socket
import urllib.request

import pytest

from minidl.data import download, mnist


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Any real network access fails the test; downloads must go through a fake opener."""
    def refuse(*args, **kwargs):
        raise AssertionError("a data test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(download, "urlopen", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("MINIDL_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIDL_OFFLINE", raising=False)
    monkeypatch.setattr(mnist, "_announced", set())
    monkeypatch.setattr(mnist, "_unreachable", {})
