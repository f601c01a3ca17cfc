"""minidl: a from-scratch deep learning framework for learning CNNs by building them.

`kernels/` and `models/` are top-level folders installed as `minidl.kernels` and `minidl.models`.
"""
import re
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "minidl" / "__init__.py").read_text()).group(1)

setup(
    name="minidl",
    version=VERSION,
    description="A tiny deep learning framework (NumPy + Numba, optional CuPy) that runs every classic CNN",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "minidl",
        "minidl.functions",
        "minidl.nn",
        "minidl.optim",
        "minidl.data",
        "minidl.training",
        "minidl.viz",
        "minidl.kernels",
        "minidl.models",
        "minidl.onnx",
        "minidl.distributed",
    ],
    package_dir={
        "minidl": "minidl",
        "minidl.kernels": "kernels",
        "minidl.models": "models",
    },
    package_data={"minidl.kernels": ["cuda/*.cu", "cuda/*.h"], "minidl.data": ["assets/*"]},
    install_requires=["numpy>=1.24", "numba>=0.59", "tqdm>=4.60", "threadpoolctl>=3.1"],   # threadpoolctl: minidl/performance.py
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6.80"],
        "gpu": ["cupy-cuda13x"],
        "plot": ["matplotlib>=3.6"],
        "notebooks": ["matplotlib>=3.6", "nbclient>=0.7", "ipykernel>=6", "ipywidgets>=8"],
        "images": ["Pillow>=9"],
        "torch": ["torch==2.13.0"],
        "weights": ["safetensors>=0.4"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],
        "mpi": ["mpi4py", "mpich"],
    },
    entry_points={"console_scripts": ["minidl-train=minidl.train:main"]},
)
