"""l2norm.normalize on NumPy arrays (CPU): results against a float64 reference, views, errors,
threads, and what the package ships (stubs, docstrings)."""

import math
import pathlib
import threading

import numpy as np
import pytest

l2norm = pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")


def reference(x, eps=1e-6, scale=1.0, mode="add"):
    rows = np.asarray(x, dtype=np.float64)
    norm_sq = np.sum(rows * rows, axis=-1, keepdims=True)
    denominator = np.sqrt(norm_sq + eps) if mode == "add" else np.maximum(np.sqrt(norm_sq), eps)
    return rows / denominator * scale


def max_ulps(got, expected, dtype):
    spacing = np.spacing(np.abs(expected).astype(dtype)).astype(np.float64)
    return float(np.max(np.abs(got.astype(np.float64) - expected) / spacing))


def f32_budget(dim, scaled=False):
    return (math.ceil(math.log2(dim)) + 2) / 2 + 2.5 + (1 if scaled else 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("shape", [(7,), (33, 128), (3, 5, 100), (2, 3, 4, 1000)])
def test_matches_reference(dtype, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    y = l2norm.normalize(x)
    assert type(y) is np.ndarray and y.dtype == dtype and y.shape == x.shape
    budget = f32_budget(shape[-1]) if dtype == np.float32 else 1.0
    assert max_ulps(y, reference(x), dtype) <= budget


@pytest.mark.parametrize("mode", ["add", "clamp"])
def test_options(mode):
    x = np.random.default_rng(2).standard_normal((64, 96)).astype(np.float32)
    x[3] = 0
    y = l2norm.normalize(x, eps=1e-3, scale=0.125, eps_mode=mode)
    assert max_ulps(y, reference(x, 1e-3, 0.125, mode), np.float32) <= f32_budget(96, True)
    assert not np.any(y[3])


def test_scale_is_a_separate_multiply():
    x = np.random.default_rng(3).standard_normal((32, 128)).astype(np.float32)
    scale = np.float32(0.123456)
    assert np.array_equal(l2norm.normalize(x, scale=float(scale)), l2norm.normalize(x) * scale)


def test_bfloat16_through_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (NumPy bfloat16) not installed")
    x = np.random.default_rng(4).standard_normal((16, 256)).astype(ml_dtypes.bfloat16)
    y = l2norm.normalize(x)
    assert y.dtype == ml_dtypes.bfloat16
    expected = reference(x.astype(np.float32))
    spacing = np.spacing(np.abs(expected).astype(np.float32)) * 2.0**16  # bf16 ulp
    assert np.max(np.abs(y.astype(np.float64) - expected) / spacing) <= 1.0
    out = np.empty_like(x)
    assert l2norm.normalize(x, out=out) is out and np.array_equal(out.view(np.uint16), y.view(np.uint16))


def test_strided_views_zero_copy():
    packed = np.random.default_rng(5).standard_normal((10, 3 * 64)).astype(np.float32)
    q = packed[:, 64:128]  # a slice of a packed projection: row stride 192
    y = l2norm.normalize(q)
    assert np.array_equal(y, l2norm.normalize(np.ascontiguousarray(q)))
    heads = packed.reshape(10, 3, 64).transpose(1, 0, 2)  # permuted leading dims
    assert np.array_equal(l2norm.normalize(heads), l2norm.normalize(np.ascontiguousarray(heads)))
    before = packed.copy()
    l2norm.normalize(q, out=q)  # in place on the view: the other slices stay untouched
    assert np.array_equal(packed[:, 64:128], y)
    assert np.array_equal(packed[:, :64], before[:, :64]) and np.array_equal(packed[:, 128:], before[:, 128:])


def test_read_only_input():
    x = np.ones((4, 4), np.float32)
    x.flags.writeable = False
    assert np.allclose(l2norm.normalize(x), 0.5)


def test_empty_batch():
    assert l2norm.normalize(np.empty((0, 8), np.float32)).shape == (0, 8)


@pytest.mark.parametrize("array, message", [
    (np.zeros((4, 2), np.float32).T, "last-dim stride"),
    (np.zeros((4, 2), np.float32)[::-1], "negative"),
    (np.zeros((4, 2), np.float64), "dtype float64"),
    (np.zeros((4, 0), np.float32), "dim"),
    (np.zeros((1, 1, 1, 1, 2), np.float32), "rank"),
])
def test_library_errors_are_value_errors(array, message):
    with pytest.raises(ValueError, match=message):
        l2norm.normalize(array)


def test_argument_errors():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match="eps_mode"):
        l2norm.normalize(x, eps_mode="max")
    with pytest.raises(ValueError, match="eps"):
        l2norm.normalize(x, eps=-1.0)
    with pytest.raises(ValueError, match="shape"):
        l2norm.normalize(x, out=np.empty((4, 4), np.float32))
    with pytest.raises(ValueError, match="dtype"):
        l2norm.normalize(x, out=np.empty((4, 8), np.float16))
    read_only = np.empty((4, 8), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(TypeError):
        l2norm.normalize(x, out=read_only)


def test_not_yet_implemented_options_name_what_is_missing():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(NotImplementedError, match="rstd"):
        l2norm.normalize(x, return_rstd=True)
    with pytest.raises(NotImplementedError, match="output dtype"):
        l2norm.normalize(x, out_dtype=np.float16)
    assert l2norm.normalize(x, out_dtype="float32").dtype == np.float32


def test_device_failures_are_l2norm_errors():
    if l2norm.cuda_available():
        pytest.skip("a CUDA device is usable here; the failure needs a machine without one")
    with pytest.raises(l2norm.L2NormError) as caught:
        l2norm.prewarm("f32", 128, device="cuda:0")
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.code == "unsupported" and "cuda:0" in str(caught.value)
    l2norm.prewarm("f32", 128, device="cpu")


def test_threads_match_single_threaded_bitwise():
    rng = np.random.default_rng(6)
    inputs = [rng.standard_normal((257, 384)).astype(dtype) for dtype in (np.float32, np.float16) * 4]
    expected = [l2norm.normalize(x) for x in inputs]
    failures = []

    def hammer(index):
        for _ in range(50):
            got = l2norm.normalize(inputs[index])
            if not np.array_equal(got.view(np.uint8), expected[index].view(np.uint8)):
                failures.append(index)
                return

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_package_ships_stubs_and_docstrings():
    package = pathlib.Path(l2norm.__file__).parent
    assert (package / "py.typed").exists()
    stub = (package / "_core.pyi").read_text()
    for name in ("def l2_norm(", "def prewarm(", "def cuda_available(", "def devices("):
        assert name in stub
    for function in (l2norm.normalize, l2norm.prewarm, l2norm._core.l2_norm, l2norm.devices):
        assert function.__doc__ and len(function.__doc__) > 40
    assert l2norm.L2NormError.__doc__ and "code" in l2norm.L2NormError.__doc__
    assert l2norm.__version__.count(".") == 2
