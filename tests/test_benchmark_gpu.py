"""benchmarks/gpu.py without a GPU: a one-line exit with status 2, and its report writers on made-up figures."""
import os
import subprocess
import sys
from pathlib import Path

from benchmarks import gpu

ROOT = Path(__file__).resolve().parents[1]


def test_exits_with_status_2_and_one_line_without_a_gpu(tmp_path):
    code = "import sys; sys.modules['cupy'] = None\nfrom benchmarks.gpu import main\nmain(['--out', sys.argv[1]])"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == ["benchmarks.gpu: no GPU: minidl.cuda: CuPy is not installed: "
                                        "pip install 'minidl[gpu]'"]
    assert list(tmp_path.iterdir()) == []


def test_junit_counts(tmp_path):
    xml = tmp_path / "gpu.xml"
    xml.write_text('<testsuites><testsuite name="pytest" tests="10" failures="2" errors="1" skipped="3">'
                   '</testsuite></testsuites>')
    assert gpu.junit_counts(xml) == {"tests": 10, "passed": 4, "failed": 2, "errors": 1, "skipped": 3}


def test_markdown_report():
    report = {"date": "2026-01-01T00:00:00", "device": "NVIDIA H100", "compute_capability": "9.0",
              "device_count": 1, "cuda_runtime": "13.0", "cuda_driver": "13.0", "cupy": "14.2.0",
              "torch": "2.11.0", "cudnn": 91000, "steps": 20,
              "gpu_tests": {"tests": 10, "passed": 10, "failed": 0, "errors": 0, "skipped": 0},
              "training": [{"model": "lenet5", "batch": 256, "precision": "fp32", "minidl_img_s": 1000.0,
                            "torch_img_s": 5000.0, "ratio": 5.0},
                           {"model": "vgg16", "batch": 32, "precision": "tf32", "minidl_img_s": 10.0,
                            "torch_img_s": None, "ratio": None}],
              "layers": [{"layer": "conv1 7x7/2", "minidl_ms": (1.0, 3.0), "cudnn_ms": (0.5, 1.0),
                          "ratio": [2.0, 3.0]}]}
    text = gpu.markdown(report)
    assert "GPU test suite: 10 passed, 0 failed" in text
    assert "| lenet5 | 256 | fp32 | 1000.0 | 5000.0 | 5.00x |" in text
    assert "| vgg16 | 32 | tf32 | 10.0 | - | - |" in text
    assert "| conv1 7x7/2 | 1.000 | 3.000 | 0.500 | 1.000 | 2.00x | 3.00x |" in text
