"""benchmarks/torch_spin.py end to end on two rounds a case: each case's process is set up as it says (no
timing asserted)."""
import json
import os

import pytest

from benchmarks import torch_spin


def test_every_case_runs_in_its_own_setting_and_writes_json(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "spin.json"
    torch_spin.main(["--rounds", "2", "--out", str(out)])
    saved = json.loads(out.read_text())
    runs = {run["spec"]["case"]: run for run in saved["runs"]}
    assert sorted(runs) == sorted(torch_spin.CASES)
    for name, run in runs.items():
        assert len(run["times"]["minidl"]) == len(run["times"]["torch"]) == 2
        assert run["omp_wait_policy"] == ("passive" if name == "passive" else None)
        assert run["minidl_threads"] == (1 if name == "minidl 1 thr" else len(os.sched_getaffinity(0)))
    assert [row["case"] for row in saved["summary"]] == list(torch_spin.CASES)
    assert all(row["ratio"] > 0 for row in saved["summary"])
    assert "| passive |" in capsys.readouterr().out


def test_an_unknown_model_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit):
        torch_spin.main(["--model", "lenet6"])
    assert "--model: unknown 'lenet6'" in capsys.readouterr().err
