"""One line on stderr the first time a minidl Numba kernel has to be compiled.

Numba compiles a kernel on its first call unless its on-disk cache (numba's CACHE_DIR, set by
``minidl.kernels``) already holds it for this source and machine; on a cold cache a first training step
can sit for a minute with the progress bar frozen. Numba announces every real compilation, and only
those, with a ``"numba:compile"`` event (a kernel loaded from the cache raises none), so listening to it
costs nothing once the cache is warm and needs no guess about the cache's layout.
"""
import sys

from numba.core import config, event

MESSAGE = "minidl: compiling CPU kernels, first run only (cached in {})..."


class FirstCompileNotice(event.Listener):
    """Prints :data:`MESSAGE` at the first compilation of a function defined in ``minidl.kernels``."""

    def __init__(self, stream=None):
        self.stream = stream
        self.said = False

    def on_start(self, ev):
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "") or ""
        if not self.said and module.startswith("minidl.kernels"):
            self.said = True
            print(MESSAGE.format(config.CACHE_DIR or "numba's cache"),
                  file=self.stream or sys.stderr, flush=True)

    def on_end(self, ev):
        pass


notice = FirstCompileNotice()
event.register("numba:compile", notice)
