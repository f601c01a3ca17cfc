"""minidl.performance: the thread policy applied at run time and restored, and an import that retunes nothing.

The speed itself is measured by benchmarks/notebook_order.py, never asserted here.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import minidl
import minidl.functions as F
from minidl import nn, performance

threadpoolctl = pytest.importorskip("threadpoolctl")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def blas_threads():
    return [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    """BLAS at 2 threads for the test (so a limit of 1 is visible), the policy at its default, both restored."""
    if not blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    previous = performance.set_thread_policy(1)
    with threadpoolctl.threadpool_limits(2, user_api="blas"):
        if set(blas_threads()) != {2}:
            pytest.skip("this BLAS cannot be set to 2 threads")
        yield
    performance.set_thread_policy(previous)


class Probe(nn.Module):
    """Records BLAS's thread counts during its forward and during its backward."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.seen = {}

    def forward(self, x):
        self.seen["forward"] = blas_threads()
        probe = self

        class Record(minidl.Function):
            def forward(self, a):
                return a

            def backward(self, g):
                probe.seen["backward"] = blas_threads()
                return g

        return Record()(self.linear(x))


def test_limit_applied_in_forward_and_backward_and_restored(two_blas_threads):
    model = Probe()
    loss = model(minidl.randn(5, 4)).sum()
    assert set(blas_threads()) == {2}                      # restored after the forward pass
    loss.backward()
    assert set(blas_threads()) == {2}                      # and after backward
    assert set(model.seen["forward"]) == {1} and set(model.seen["backward"]) == {1}


def test_nested_regions_apply_once_and_an_error_restores(two_blas_threads):
    seen = []

    class Inner(nn.Module):
        def forward(self, x):
            seen.append(blas_threads())
            raise RuntimeError("boom")

    outer = nn.Sequential(nn.Identity(), Inner())
    with performance.compute():
        with pytest.raises(RuntimeError, match="boom"):
            outer(minidl.randn(2, 2))
        assert set(blas_threads()) == {1}                  # the outer region still holds the limit
    assert set(seen[0]) == {1} and set(blas_threads()) == {2}


def test_policy_none_leaves_blas_alone(two_blas_threads):
    performance.set_thread_policy(None)
    model = Probe()
    model(minidl.randn(5, 4)).sum().backward()
    assert set(model.seen["forward"]) == {2} and set(model.seen["backward"]) == {2}
    assert performance.thread_policy()["blas_threads"] is None


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_set_thread_policy_refuses_bad_values(bad):
    with pytest.raises(ValueError, match="set_thread_policy: blas_threads must be an int >= 1 or None"):
        performance.set_thread_policy(bad)


def test_training_results_do_not_depend_on_the_policy():
    """The limit changes where the GEMMs run, not what they compute: same seed, same weights."""
    def train(policy):
        previous = performance.set_thread_policy(policy)
        try:
            minidl.manual_seed(0)
            model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
            opt = minidl.optim.SGD(model.parameters(), lr=0.1)
            x, t = minidl.randn(8, 1, 8, 8), minidl.randint(0, 3, (8,))
            for _ in range(3):
                opt.zero_grad()
                F.cross_entropy(model(x), t).backward()
                opt.step()
            return [p.data.copy() for p in model.parameters()]
        finally:
            performance.set_thread_policy(previous)
    for a, b in zip(train(1), train(None)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def run_child(code, **env):
    child_env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER",)}
    child_env.update(env)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


IMPORT_CHECK = """
import json, os
import numpy, threadpoolctl
env, pools = dict(os.environ), threadpoolctl.threadpool_info()
import minidl, numba
from numba.np.ufunc import parallel
from minidl import nn
after_import = (dict(os.environ) == env, threadpoolctl.threadpool_info() == pools)
model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 4 * 4, 2))
model(minidl.randn(2, 1, 6, 6)).sum().backward()
# the step may load a library with a pool of its own; those present
# before must keep their settings
after = {info["filepath"]: info for info in threadpoolctl.threadpool_info()}
print(json.dumps({"env": after_import[0], "pools": after_import[1], "env_after_step": dict(os.environ) == env,
                  "pools_after_step": all(after.get(info["filepath"]) == info for info in pools),
                  "layer": numba.config.THREADING_LAYER, "cache_dir": numba.config.CACHE_DIR,
                  "numba_threads_started": bool(getattr(parallel, "_is_initialized", False))}))
"""


def test_import_and_a_training_step_leave_the_environment_and_thread_pools_alone():
    result = run_child(IMPORT_CHECK)
    assert result["env"] and result["pools"] and result["env_after_step"] and result["pools_after_step"]
    assert result["layer"] == "default"                     # Numba's layer left as the program has it
    assert not result["numba_threads_started"]              # and never started: minidl's kernels are serial
    assert result["cache_dir"]                               # Numba's cache outside the checkout, via its config


def test_set_performance_defaults_contract():
    env = dict(os.environ)
    pools = threadpoolctl.threadpool_info()
    done = minidl.set_performance_defaults()
    assert minidl.set_performance_defaults() == done        # idempotent
    assert set(done) == {"keep_freed_memory", "blas_threads", "num_threads"}
    assert done["keep_freed_memory"] == sys.platform.startswith("linux")
    assert dict(os.environ) == env and threadpoolctl.threadpool_info() == pools
