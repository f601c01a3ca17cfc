"""The speed suite runs end to end on its tiny setting (benchmarks themselves never run in the tests)."""
import importlib.util
import json

import numpy as np
import pytest

import minidl
from benchmarks import ops, run


def test_quick_suite_runs_and_writes_json(tmp_path, capsys):
    results = run.main(["--quick", "--out", str(tmp_path)])
    written = list(tmp_path.glob("run-*-quick.json"))
    assert len(written) == 1
    saved = json.loads(written[0].read_text())
    assert saved["settings"]["quick"] and saved["calibration"]["start_gflops"] > 0
    assert all(row["minidl_s"] > 0 for row in saved["ops"])
    assert saved["models"][0]["train_minidl_img_s"] > 0 and saved["memory"][0]["minidl_step_mb"] is not None
    assert saved["startup"]["import_s"] > 0
    has_torch = importlib.util.find_spec("torch") is not None
    assert (saved["models"][0]["train_ratio"] is not None) == has_torch
    assert "| model / batch |" in capsys.readouterr().out
    assert results["targets"]


def test_conv_gemm_shape():
    op = dict(kind="conv", x=[16, 3, 227, 227], K=96, k=11, stride=4, pad=0, groups=1)
    assert ops.gemm_shape(op) == (1, 96, 363, 16 * 55 * 55)
    depthwise = dict(kind="conv", x=[2, 8, 10, 10], K=8, k=3, stride=1, pad=1, groups=8)
    assert ops.gemm_shape(depthwise) == (8, 1, 9, 200)


@pytest.mark.parametrize("name", ["lenet5", "lenet5_paper", "resnet20"])
def test_torch_twins_match_minidl_parameter_counts(name):
    torch = pytest.importorskip("torch")
    from benchmarks import models, torch_models
    minidl_count = sum(p.data.size for p in models.build_minidl(name).parameters())
    torch_count = sum(p.numel() for p in torch_models.BUILDERS[name]().parameters())
    assert minidl_count == torch_count


def test_paper_lenet5_twin_computes_what_minidl_computes():
    # The same weights in both: the PyTorch twin of the faithful LeNet-5 gives minidl's logits.
    torch = pytest.importorskip("torch")
    from benchmarks import models, torch_models
    ours = models.build_minidl("lenet5_paper")
    twin = torch_models.lenet5_paper_from_minidl(ours)
    x = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    expected = ours(minidl.tensor(x)).numpy()
    with torch.no_grad():
        got = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_train_epoch_vs_torch_runs_on_the_mnist_sample(tmp_path):
    pytest.importorskip("torch")
    from benchmarks import train_epoch_vs_torch
    result = train_epoch_vs_torch.main(["--dataset", "mnist-sample", "--limit", "128", "--rounds", "1",
                                        "--out", str(tmp_path)])
    assert result["images_per_epoch"] == 128 and result["outputs_max_abs_difference"] < 1e-3
    assert all(len(v) == 1 and v[0] > 0 for v in result["seconds_per_epoch"].values())
    assert len(list(tmp_path.glob("train_epoch_vs_torch-*.json"))) == 1
