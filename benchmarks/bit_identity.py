"""Bit-for-bit comparison of two checkouts (issue 14's check that a restructure changed no result): every
kernel through ``minidl.kernels`` on fixed inputs, and conv2d / conv_transpose2d forward + backward on
shapes that take every algorithm of kernels/conv.py (with MINIDL_WINOGRAD=auto and =always).

    OPENBLAS_NUM_THREADS=1 python benchmarks/bit_identity.py /work/base /work/main

Each checkout runs in its own process, with its ``kernels`` and ``models`` folders linked into a copy of its
``minidl`` package (so an editable install of another checkout does not interfere), and saves its outputs;
then every array is compared byte for byte. Pin OPENBLAS_NUM_THREADS: OpenBLAS's results can depend on
its thread count, and checkouts may differ in the BLAS threads they use.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


CASES = [  # name, x shape, W shape, kwargs, dtype, bias, need_gx
    ("im2col_small", (2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1), "f4", True, True),
    ("im2col_small_f64", (2, 3, 8, 8), (4, 3, 3, 3), dict(padding=1), "f8", True, True),
    ("im2col_grouped_strided_dilated", (3, 4, 11, 9), (6, 2, 3, 3), dict(stride=2, padding=2, dilation=2, groups=2), "f4", True, True),
    ("im2col_lenet_c3", (64, 6, 14, 14), (16, 6, 5, 5), {}, "f4", True, True),
    ("im2col_lenet_c5", (64, 16, 5, 5), (120, 16, 5, 5), {}, "f4", True, True),
    ("pointwise_small", (4, 8, 6, 6), (5, 8, 1, 1), {}, "f4", True, True),
    ("pointwise_strided", (4, 8, 7, 7), (5, 8, 1, 1), dict(stride=2), "f4", False, True),
    ("pointwise_large", (32, 64, 16, 16), (32, 64, 1, 1), {}, "f4", True, True),
    ("pointwise_large_grouped", (16, 64, 16, 16), (32, 16, 1, 1), dict(groups=4, stride=2), "f4", True, True),
    ("depthwise_3x3", (8, 32, 20, 20), (32, 1, 3, 3), dict(padding=1, groups=32), "f4", True, True),
    ("depthwise_5x5_f64", (2, 6, 9, 9), (6, 1, 5, 5), dict(padding=2, groups=6), "f8", False, True),
    ("winograd_auto", (8, 32, 16, 16), (32, 32, 3, 3), dict(padding=1), "f4", True, True),
    ("winograd_auto_first_layer", (8, 32, 16, 16), (48, 32, 3, 3), dict(padding=1), "f4", True, False),
    ("chunks_same_resnet", (64, 16, 32, 32), (16, 16, 3, 3), dict(padding=1), "f4", True, True),
    ("chunks_same_first_layer", (64, 3, 32, 32), (16, 3, 3, 3), dict(padding=1), "f4", True, False),
    ("chunks_5x5_unpadded", (64, 1, 32, 32), (6, 1, 5, 5), {}, "f4", True, True),
    ("chunks_5x5_same", (16, 8, 28, 28), (8, 8, 5, 5), dict(padding=2), "f4", False, True),
    ("chunks_strided", (32, 16, 32, 32), (32, 16, 3, 3), dict(stride=2, padding=1), "f4", True, True),
    ("chunks_grouped", (32, 16, 32, 32), (32, 8, 3, 3), dict(padding=1, groups=2), "f4", True, True),
    ("chunks_big_filters", (16, 128, 4, 4), (128, 128, 3, 3), dict(padding=1), "f4", True, True),
    ("chunks_f64", (16, 16, 24, 24), (16, 16, 3, 3), dict(padding=1), "f8", True, True),
    ("same_even_kernel", (4, 3, 9, 10), (5, 3, 4, 4), dict(padding="same"), "f4", True, True),
    ("same_even_kernel_large", (32, 16, 20, 20), (16, 16, 2, 2), dict(padding="same"), "f4", True, True),
]


def calls(rng, dt):
    """(kernel name, arguments) for every kernel, on fixed shapes that take each of its paths."""
    from minidl.kernels import reference as ref

    def n(*s):
        return rng.standard_normal(s).astype(dt)
    out = []
    for shape, conv in [((3, 4, 9, 11), (3, 3, 1, 1, 1, 1)), ((2, 3, 14, 14), (5, 5, 1, 1, 0, 0)),
                        ((2, 2, 8, 6), (3, 2, 1, 1, 2, 0)), ((2, 3, 5, 5), (5, 5, 1, 1, 0, 0)),
                        ((2, 3, 9, 9), (3, 3, 2, 2, 1, 1)), ((2, 3, 9, 9), (3, 3, 1, 1, 2, 2, 2, 2)),
                        ((2, 3, 10, 7), (3, 2, 2, 3, 1, 2, 2, 1)), ((4, 6, 12, 12), (5, 5, 1, 1, 2, 2))]:
        x = n(*shape)
        col = ref.im2col(x, *conv)
        out += [("im2col", (x, *conv)), ("col2im", (n(*col.shape), *shape[2:], *conv[2:])),
                ("im2col_gemm", (x, *conv)), ("col2im_gemm", (n(*col.transpose(1, 2, 3, 0, 4, 5).shape), *shape[2:], *conv[2:]))]
    out.append(("col2im_gemm", (n(3, 5, 4, 2, 1, 1), 5, 4, 1, 1, 0, 0)))
    for shape, kh, kw, ph, pw in [((2, 3, 9, 8), 3, 3, 1, 1), ((2, 4, 7, 7), 5, 3, 2, 0), ((1, 2, 12, 12), 3, 3, 0, 0)]:
        x = n(*shape)
        y = ref.depthwise_conv2d(x, n(shape[1], 1, kh, kw), ph, pw)
        out += [("depthwise_conv2d", (x, n(shape[1], 1, kh, kw), ph, pw)),
                ("depthwise_conv2d_grad_weight", (x, n(*y.shape), kh, kw, ph, pw))]
    BT, AT = np.array(ref.WINOGRAD_BT, dt), np.array(ref.WINOGRAD_AT, dt)
    for L, s, AI in [(BT, 4, 6), (AT.T.copy(), 4, 4), (n(3, 2), 1, 2), (n(6, 6), 4, 6)]:
        AO = L.shape[0]
        for C in (1, 7, 33):
            out.append(("winograd_tiles", (n(2, s * 2 + AI + 1, s * 3 + AI, C), L, s, 3, 4)))
    for L, s in [(AT, 4), (BT.T.copy(), 4), (n(4, 6), 4), (n(2, 3), 1)]:
        AO, AI = L.shape
        for C in (1, 7, 33):
            out.append(("winograd_untiles", (n(AI * AI, 2 * 3 * 4, C), L, s, 3, 4, s * 2 + AO + 1, s * 3 + AO + 2)))
    x = n(2, 5, 7, 9)
    out += [("pad_nhwc", (x, 1, 2, 10, 12)), ("crop_nchw", (n(2, 10, 12, 5), 1, 2, 7, 9))]
    for shape, pool in [((2, 3, 8, 6), (2, 2, 2, 2, 0, 0)), ((2, 3, 7, 9), (2, 2, 2, 2, 0, 0)), ((2, 3, 6, 66), (2, 2, 2, 2, 0, 0)),
                        ((2, 3, 9, 9), (3, 3, 2, 2, 1, 1)), ((2, 3, 11, 7), (3, 2, 1, 2, 1, 0)), ((2, 3, 28, 28), (2, 2, 2, 2, 0, 0))]:
        for ceil in (False, True):
            x = rng.permutation(np.prod(shape)).reshape(shape).astype(dt)
            x[0, 0, 0, :2] = np.nan
            y, idx = ref.max_pool2d_forward(x, *pool, ceil)
            out += [("max_pool2d_forward", (x, *pool, ceil)), ("max_pool2d_backward", (n(*y.shape), idx, *shape[2:]))]
            for cip in (True, False):
                out += [("avg_pool2d_forward", (n(*shape), *pool, ceil, cip)),
                        ("avg_pool2d_backward", (n(*y.shape), *shape[2:], *pool, ceil, cip))]
    for shape in [(2, 3, 4, 5), (8, 16, 6, 6), (1, 1, 1, 1)]:
        C = shape[1]
        x = n(*shape) * 2 + 1
        g, b = rng.uniform(0.5, 2, C).astype(dt), n(C)
        _, mean, invstd, _ = ref.batch_norm_forward_train(x, g, b, 1e-5)
        out += [("batch_norm_forward_train", (x, g, b, 1e-5)),
                ("batch_norm_forward_eval", (x, g, b, n(C), rng.uniform(0.5, 2, C).astype(dt), 1e-5)),
                ("batch_norm_backward", (n(*shape), x, g, mean, invstd))]
        for size in (1, 4, 5):
            y, scale = ref.lrn_forward(x, size, 1e-2, 0.75, 2.0)
            out += [("lrn_forward", (x, size, 1e-2, 0.75, 2.0)), ("lrn_backward", (n(*shape), x, y, scale, size, 1e-2, 0.75))]
    return out




def run_conv(name, xs, ws, kwargs, dtype, bias, need_gx, rng, transpose=False):
    import minidl
    import minidl.functions as F
    x = minidl.Tensor(rng.standard_normal(xs).astype(dtype), requires_grad=need_gx)
    W = minidl.Tensor((rng.standard_normal(ws) * 0.1).astype(dtype), requires_grad=True)
    b = minidl.Tensor(rng.standard_normal(ws[1] * kwargs.get("groups", 1) if transpose else ws[0]).astype(dtype),
                      requires_grad=True) if bias else None
    y = (F.conv_transpose2d if transpose else F.conv2d)(x, W, b, **kwargs)
    y.backward(minidl.Tensor(rng.standard_normal(y.shape).astype(dtype)))
    out = {f"{name}/y": y.data, f"{name}/gW": W.grad.data}
    if need_gx:
        out[f"{name}/gx"] = x.grad.data
    if bias:
        out[f"{name}/gb"] = b.grad.data
    return out


def save_outputs(path):
    """In a checkout's process: every output, saved to path (npz)."""
    import minidl.kernels as k
    arrays = {}
    rng = np.random.default_rng(0)
    for dt in (np.float32, np.float64):
        for i, (name, args) in enumerate(calls(rng, dt)):
            res = getattr(k, name)(*args)
            for j, r in enumerate(res if isinstance(res, tuple) else (res,)):
                arrays[f"kernels/{np.dtype(dt).name}/{i}/{name}/{j}"] = r
    for case in CASES:
        arrays.update(run_conv(*case, rng))
    for name, xs, ws, kwargs in [("transpose", (2, 4, 5, 6), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1)),
                                 ("transpose_grouped", (2, 4, 5, 5), (4, 2, 3, 3), dict(padding=1, groups=2, dilation=2)),
                                 ("transpose_past", (2, 2, 3, 3), (2, 2, 2, 2), dict(dilation=3, output_padding=2))]:
        arrays.update(run_conv(name, xs, ws, kwargs, "f4", True, True, rng, transpose=True))
    np.savez(path, **arrays)


def linked_package(tree):
    """A folder whose minidl/ links to tree's minidl/*, kernels and models (as setup.py's package_dir installs
    them). Kept under the temporary directory at a path fixed by tree's, so that Numba's cache (keyed on the
    source path) compiles each checkout's kernels once, not on every run."""
    folder = os.path.join(tempfile.gettempdir(), "minidl-bit-identity", tree.strip(os.sep).replace(os.sep, "_"))
    package = os.path.join(folder, "minidl")
    os.makedirs(package, exist_ok=True)
    links = {entry: os.path.join(tree, "minidl", entry) for entry in os.listdir(os.path.join(tree, "minidl"))}
    links.update({name: os.path.join(tree, name) for name in ("kernels", "models")})
    for entry in os.listdir(package):
        if entry not in links or os.readlink(os.path.join(package, entry)) != links[entry]:
            os.remove(os.path.join(package, entry))
    for entry, target in links.items():
        if not os.path.lexists(os.path.join(package, entry)):
            os.symlink(target, os.path.join(package, entry))
    return folder


def main(tree_a, tree_b):
    with tempfile.TemporaryDirectory() as scratch:
        for mode in ("auto", "always"):
            results = {}
            for label, tree in (("a", tree_a), ("b", tree_b)):
                root = linked_package(os.path.abspath(tree))
                path = os.path.join(scratch, f"{label}-{mode}.npz")
                env = dict(os.environ, PYTHONPATH=root, MINIDL_WINOGRAD=mode)
                subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.dirname(__file__)!r}); "
                                f"import bit_identity; bit_identity.save_outputs({path!r})"],
                               env=env, check=True, cwd=scratch)
                results[label] = np.load(path)
            a, b = results["a"], results["b"]
            assert sorted(a.files) == sorted(b.files), set(a.files) ^ set(b.files)
            differ = [k for k in a.files if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
                      or a[k].tobytes() != b[k].tobytes()]
            print(f"MINIDL_WINOGRAD={mode}: {len(a.files)} arrays compared byte for byte, {len(differ)} differ"
                  + (f": {differ}" if differ else ""))


if __name__ == "__main__":
    main(*sys.argv[1:3])
