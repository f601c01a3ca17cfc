"""benchmarks/notebook_order.py: one configuration end to end, and the arithmetic of its table (no timing asserted)."""
import json

import pytest

from benchmarks import notebook_order


def fake(order, threads, minidl_s, torch_s, load=(1.0, 2.0)):
    spec = {"order": order, "threads": threads, "policy": "auto", "models": {"lenet5": 64}, "rounds": 2}
    return {"spec": spec, "load_start": load[0], "load_end": load[1],
            "models": {"lenet5": {"minidl_s": list(minidl_s), "torch_s": list(torch_s)}}}


def test_ratios_are_torch_time_over_minidl_time_per_round_and_repeats_pool():
    first = fake("minidl-first", "default", [0.010, 0.010], [0.020, 0.020])
    again = fake("minidl-first", "default", [0.010], [0.020], load=(0.5, 3.0))
    notebook = fake("notebook", "default", [0.040, 0.040, 0.040], [0.020, 0.020, 0.020])
    pooled = notebook_order.pooled([first, notebook, again])
    assert len(pooled) == 2 and len(pooled[0]["models"]["lenet5"]["minidl_s"]) == 3
    assert (pooled[0]["load_start"], pooled[0]["load_end"]) == (0.5, 3.0)
    assert notebook_order.summarize(pooled[0])["lenet5"]["ratio"] == pytest.approx(2.0)
    assert notebook_order.summarize(pooled[1])["lenet5"]["ratio"] == pytest.approx(0.5)
    rows = notebook_order.table(pooled).splitlines()
    assert "| 2.00 | 1.00 | 0.5-3.0 |" in rows[2]             # minidl-first: its own reference
    assert "| 0.50 | 0.25 | 1.0-2.0 |" in rows[3]             # notebook: 4x minidl-first's step time


def test_bad_configs_are_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        notebook_order.main(["--configs", "notebook:3:auto"])
    assert "--configs: 'notebook:3:auto' is not ORDER:THREADS:POLICY" in capsys.readouterr().err


def run_quick(tmp_path, *extra):
    """``--quick`` with ``extra`` arguments, one process: (the saved report, its one run)."""
    pytest.importorskip("torch")
    out = tmp_path / "nb.json"
    notebook_order.main(["--quick", "--repeat", "1", *extra, "--out", str(out)])
    saved = json.loads(out.read_text())
    run, = saved["runs"]
    assert "error" not in run, run
    return saved, run


def test_one_configuration_runs_and_writes_json(tmp_path, capsys):
    saved, run = run_quick(tmp_path, "--rounds", "2", "--configs", "notebook:1:auto")
    assert run["thread_policy"] == {"blas_threads": 1, "num_threads": 1}
    assert len(run["models"]["lenet5"]["minidl_s"]) == 2 and saved["summary"][0]["lenet5"]["ratio"] > 0
    assert "| notebook | 1 | auto | lenet5/64 |" in capsys.readouterr().out


def test_steps_a_round_are_counted_on_a_warm_step_or_given(tmp_path):
    """Rounds of ~0.25 s for the LeNet models, counted on a warm step: counted on the first step (which loads
    or compiles the kernels, ~1 s), the first LeNet model of a run alternated single steps. ``--steps`` sets it."""
    _, auto = run_quick(tmp_path, "--rounds", "1", "--configs", "notebook:1:auto")
    assert auto["models"]["lenet5"]["steps_per_round"] > 1
    _, given = run_quick(tmp_path, "--rounds", "1", "--configs", "notebook:1:auto", "--steps", "3")
    assert given["spec"]["steps"] == 3 and given["models"]["lenet5"]["steps_per_round"] == 3


def test_a_bad_steps_count_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        notebook_order.main(["--steps", "0"])
    assert "--steps: expected an int >= 1, got 0" in capsys.readouterr().err


def test_inference_passes_are_timed_with_infer(tmp_path, capsys):
    _, run = run_quick(tmp_path, "--infer", "--rounds", "2", "--configs", "minidl-first:1:auto")
    assert run["spec"]["task"] == "infer" and len(run["models"]["lenet5"]["torch_s"]) == 2
    assert "| minidl ms/pass | torch ms/pass |" in capsys.readouterr().out


def test_the_table_names_what_was_timed():
    rows = notebook_order.table([fake("notebook", 1, [0.01], [0.02])], "infer").splitlines()
    assert "ms/pass" in rows[0] and "ms/step" not in rows[0]
    assert "ms/step" in notebook_order.table([fake("notebook", 1, [0.01], [0.02])]).splitlines()[0]
