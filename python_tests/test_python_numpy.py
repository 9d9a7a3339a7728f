"""l2norm.normalize, normalize_backward and normalize_backward_from_input on NumPy arrays (CPU):
results against a float64 reference, rstd, output dtypes, views, errors, threads, and what the
package ships (stubs, docstrings)."""

import math
import pathlib
import threading

import numpy as np
import pytest

l2norm = pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")

from l2norm_test_support import requires_out_dtype  # noqa: E402


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


class Sub(np.ndarray):
    pass


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_plain_call_takes_the_fast_path_with_the_general_paths_bits(dtype):
    # normalize(x) on a plain array allocates and normalizes in C++; out= takes the general path.
    packed = np.random.default_rng(9).standard_normal((33, 3 * 128)).astype(dtype)
    views = [packed, packed[:, 128:256], packed[0], packed.reshape(33, 3, 128).transpose(1, 0, 2)]
    l2norm.normalize(packed)  # l2norm hands NumPy's types to the fast path when it first sees NumPy
    for x in views:
        assert l2norm._eager_numpy_l2_norm(x, 1e-6, 1.0, False) is not None
        y = l2norm.normalize(x, eps=1e-3, scale=0.5, eps_mode="clamp")
        out = np.empty(x.shape, dtype)
        assert l2norm._eager_numpy_l2_norm(x, 1e-3, 0.5, True, out) is out
        assert type(y) is np.ndarray and y.dtype == dtype and y.shape == x.shape
        assert y.flags.c_contiguous and y.flags.writeable
        assert np.array_equal(y.view(np.uint8), out.view(np.uint8))
        # The general path (an out of a subclass) writes the same bits.
        general = np.empty(x.shape, dtype).view(Sub)
        assert l2norm.normalize(x, eps=1e-3, scale=0.5, eps_mode="clamp", out=general) is general
        assert np.array_equal(y.view(np.uint8), np.asarray(general).view(np.uint8))


def test_fast_path_declines_what_it_does_not_serve():
    x = np.ones((4, 8), np.float32)
    assert l2norm._eager_numpy_l2_norm(l2norm.normalize(x), 1e-6, 1.0, False) is not None
    declined = [x.view(Sub), x.astype(np.float64), x.astype(">f4"), [[1.0, 2.0]]]
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (NumPy bfloat16) not installed")
    declined.append(x.astype(ml_dtypes.bfloat16))
    for array in declined:
        assert l2norm._eager_numpy_l2_norm(array, 1e-6, 1.0, False) is None
        assert l2norm._eager_numpy_l2_norm(x, 1e-6, 1.0, False, array) is None
    assert np.array_equal(l2norm.normalize(x.view(Sub)), l2norm.normalize(x))
    # Errors on the fast path are the library's, as on the general path.
    with pytest.raises(ValueError, match="shape"):
        l2norm.normalize(x, out=np.empty((4, 9), np.float32))


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
        l2norm.normalize(x, out=np.empty((4, 8), np.float64))
    read_only = np.empty((4, 8), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(TypeError):
        l2norm.normalize(x, out=read_only)


def reference_rstd(x, eps=1e-6, mode="add"):
    rows = np.asarray(x, dtype=np.float64)
    norm_sq = np.sum(rows * rows, axis=-1)
    return 1 / np.sqrt(norm_sq + eps) if mode == "add" else 1 / np.maximum(np.sqrt(norm_sq), eps)


def reference_grad(x, dy, eps=1e-6, scale=1.0, mode="add"):
    """The gradient of reference() with respect to x, in float64: per row
    scale * r * (dy - (dy . y) y) with y = x * r, and scale * dy / eps in clamp mode where the norm
    is below eps (the clamp passes no gradient to the norm)."""
    x = np.asarray(x, dtype=np.float64)
    dy = np.asarray(dy, dtype=np.float64)
    r = reference_rstd(x, eps, mode)[..., None]
    y = x * r
    dx = scale * r * (dy - np.sum(dy * y, axis=-1, keepdims=True) * y)
    if mode == "clamp":
        below = np.sqrt(np.sum(x * x, axis=-1, keepdims=True)) <= eps
        dx = np.where(below, scale * dy / eps, dx)
    return dx


def assert_grad_close(got, expected, tolerance):
    """|got - expected| within `tolerance` of the row's largest expected value; where the expected
    value overflows got's dtype, got is that infinity."""
    with np.errstate(over="ignore"):
        rounded = expected.astype(got.dtype)
    overflow = np.isinf(rounded)
    assert np.array_equal(got[overflow], rounded[overflow])
    got = np.where(overflow, 0, np.asarray(got, dtype=np.float64))
    expected = np.where(overflow, 0, expected)
    scale = np.abs(expected).max(axis=-1, keepdims=True)
    assert np.all(np.abs(got - expected) <= tolerance * scale), np.abs(got - expected).max()


GRAD_TOLERANCE = {np.float32: 2e-5, np.float16: 4e-3}


@pytest.mark.parametrize("mode", ["add", "clamp"])
@pytest.mark.parametrize("shape", [(7,), (33, 128), (3, 5, 100)])
def test_return_rstd(shape, mode):
    x = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    y, rstd = l2norm.normalize(x, eps=1e-4, eps_mode=mode, return_rstd=True)
    assert type(rstd) is np.ndarray and rstd.dtype == np.float32 and rstd.shape == shape[:-1]
    assert np.array_equal(y, l2norm.normalize(x, eps=1e-4, eps_mode=mode))
    np.testing.assert_allclose(rstd, reference_rstd(x, 1e-4, mode), rtol=2e-6)


def test_rstd_of_zero_rows_and_empty_batches():
    x = np.zeros((3, 16), np.float32)
    _, rstd = l2norm.normalize(x, eps=1e-6, return_rstd=True)
    np.testing.assert_allclose(rstd, 1 / np.sqrt(np.float32(1e-6)), rtol=1e-6)
    _, rstd = l2norm.normalize(x, eps=1e-3, eps_mode="clamp", return_rstd=True)
    np.testing.assert_allclose(rstd, 1e3, rtol=1e-6)
    y, rstd = l2norm.normalize(np.empty((0, 8), np.float32), return_rstd=True)
    assert y.shape == (0, 8) and rstd.shape == (0,)


@pytest.mark.parametrize("in_dtype, out_dtype", [(np.float32, np.float16), (np.float16, np.float32),
                                                 (np.float32, "bf16"), ("bf16", np.float32)])
def test_out_dtype(in_dtype, out_dtype):
    requires_out_dtype()
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (NumPy bfloat16) not installed")
    in_dtype = ml_dtypes.bfloat16 if in_dtype == "bf16" else in_dtype
    x = np.random.default_rng(9).standard_normal((40, 96)).astype(in_dtype)
    y, rstd = l2norm.normalize(x, out_dtype=out_dtype, return_rstd=True)
    expected_dtype = np.dtype(ml_dtypes.bfloat16 if out_dtype == "bf16" else out_dtype)
    assert y.dtype == expected_dtype and y.shape == x.shape and rstd.dtype == np.float32
    expected = reference(x.astype(np.float32))
    if expected_dtype == np.dtype(ml_dtypes.bfloat16):  # f32's exponent range: no subnormals here
        spacing = np.spacing(np.abs(expected).astype(np.float32)).astype(np.float64) * 2.0**16
    else:  # f16's own spacing, subnormals included
        spacing = np.spacing(np.abs(expected).astype(expected_dtype)).astype(np.float64)
    budget = 1.0 if expected_dtype.itemsize == 2 else f32_budget(96)
    assert np.max(np.abs(y.astype(np.float64) - expected) / spacing) <= budget
    # the same bits as the op written into an output array of that dtype
    out = np.empty(x.shape, expected_dtype)
    l2norm.normalize(x, out=out)
    assert np.array_equal(out.view(np.uint8), y.view(np.uint8))


def test_out_and_out_dtype_must_agree():
    x = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match="out_dtype"):
        l2norm.normalize(x, out=np.empty((4, 8), np.float32), out_dtype=np.float16)
    assert l2norm.normalize(x, out_dtype="float32").dtype == np.float32
    assert l2norm.normalize(x, out_dtype="f32").dtype == np.float32
    with pytest.raises(ValueError, match="dtype"):
        l2norm.normalize(x, out_dtype="float64")
    with pytest.raises(ValueError, match="dtype"):
        l2norm.normalize(x, out_dtype="no such type")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mode, eps, scale", [("add", 1e-6, 1.0), ("add", 1e-3, 0.5),
                                              ("clamp", 1e-12, 1.0), ("clamp", 1e-2, 2.0)])
def test_backward_matches_reference(dtype, mode, eps, scale):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((65, 3, 96)).astype(dtype)
    x[4, 1] = 0  # a zero row: add mode gives scale * dy / sqrt(eps), clamp mode scale * dy / eps
    x[7, 2] = 1e-4  # a small row: clamp mode with eps 1e-2 clamps it
    dy = rng.standard_normal(x.shape).astype(dtype)
    expected = reference_grad(x, dy, eps, scale, mode)
    y, rstd = l2norm.normalize(x, eps=eps, eps_mode=mode, return_rstd=True)
    dx = l2norm.normalize_backward(dy, y, rstd, eps=eps, scale=scale, eps_mode=mode,
                                   out_dtype=np.float32)
    assert dx.dtype == np.float32 and dx.shape == x.shape
    # y rounded to the input dtype bounds the accuracy of the gradient computed from it
    assert_grad_close(dx, expected, GRAD_TOLERANCE[dtype])
    dx_from_input = l2norm.normalize_backward_from_input(dy, x, eps=eps, scale=scale, eps_mode=mode)
    assert dx_from_input.dtype == dtype
    assert_grad_close(dx_from_input, expected, GRAD_TOLERANCE[dtype])


def test_backward_in_place_and_strided():
    rng = np.random.default_rng(11)
    packed = rng.standard_normal((20, 3 * 64)).astype(np.float32)
    q = packed[:, :64]  # a strided slice, no copy
    y, rstd = l2norm.normalize(q, return_rstd=True)
    dy = rng.standard_normal((20, 64)).astype(np.float32)
    expected = l2norm.normalize_backward(dy, y, rstd)
    assert l2norm.normalize_backward(dy, y, rstd, out=dy) is dy  # in place
    assert np.array_equal(dy, expected)
    flat_rstd = rstd.reshape(-1)
    assert np.array_equal(l2norm.normalize_backward(expected, y, flat_rstd),
                          l2norm.normalize_backward(expected, y, rstd))
    grad_packed = rng.standard_normal((20, 3 * 64)).astype(np.float32)
    dk = grad_packed[:, 64:128]  # dy a strided slice as well
    assert np.array_equal(l2norm.normalize_backward_from_input(dk, q),
                          l2norm.normalize_backward_from_input(np.ascontiguousarray(dk), q))


def test_backward_mixed_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes", reason="ml_dtypes (NumPy bfloat16) not installed")
    rng = np.random.default_rng(12)
    x = rng.standard_normal((32, 128)).astype(np.float32)
    y, rstd = l2norm.normalize(x.astype(ml_dtypes.bfloat16), return_rstd=True)
    dy = rng.standard_normal(x.shape).astype(np.float16)
    dx = l2norm.normalize_backward(dy, y, rstd, out_dtype=np.float32)
    assert dx.dtype == np.float32
    assert_grad_close(dx, reference_grad(x.astype(ml_dtypes.bfloat16), dy), 2e-2)
    dx_bf16 = l2norm.normalize_backward(dy, y, rstd, out_dtype="bf16")
    assert dx_bf16.dtype == ml_dtypes.bfloat16
    assert_grad_close(dx_bf16, reference_grad(x.astype(ml_dtypes.bfloat16), dy), 2e-2)


def test_backward_errors():
    x = np.random.default_rng(13).standard_normal((6, 3, 8)).astype(np.float32)
    y, rstd = l2norm.normalize(x, return_rstd=True)
    dy = np.ones_like(x)
    with pytest.raises(ValueError, match="rstd"):
        l2norm.normalize_backward(dy, y, rstd[:5])
    with pytest.raises(ValueError, match="rstd"):
        l2norm.normalize_backward(dy, y, rstd.astype(np.float16))
    with pytest.raises(ValueError, match="rstd.*row-major"):
        l2norm.normalize_backward(dy, y, np.empty((3, 6), np.float32).T)
    with pytest.raises(ValueError, match="shape"):
        l2norm.normalize_backward(dy[:, :2], y, rstd)
    with pytest.raises(ValueError, match="dx"):
        l2norm.normalize_backward(dy, y, rstd, out=y)  # only dy may be overwritten
    with pytest.raises(ValueError, match="eps_mode"):
        l2norm.normalize_backward_from_input(dy, x, eps_mode="max")
    with pytest.raises(TypeError, match="DLPack"):
        l2norm.normalize_backward_from_input(dy, [1.0, 2.0])


def test_device_failures_are_l2norm_errors():
    if l2norm.cuda_available():
        pytest.skip("a CUDA device is usable here; the failure needs a machine without one")
    with pytest.raises(l2norm.L2NormError) as caught:
        l2norm.prewarm("f32", 128, device="cuda:0")
    assert isinstance(caught.value, RuntimeError)
    assert caught.value.code == "unsupported" and "cuda:0" in str(caught.value)
    l2norm.prewarm("f32", 128, device="cpu", backward=True)


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
    for name in ("def l2_norm(", "def l2_norm_backward(", "def l2_norm_backward_from_input(",
                 "def prewarm(", "def prewarm_backward(", "def make_encoder(", "def cuda_available(",
                 "def devices("):
        assert name in stub
    for function in (l2norm.normalize, l2norm.normalize_backward,
                     l2norm.normalize_backward_from_input, l2norm.prewarm, l2norm._core.l2_norm,
                     l2norm._core.l2_norm_backward, l2norm._core.make_encoder, l2norm.devices):
        assert function.__doc__ and len(function.__doc__) > 40
    assert l2norm.L2NormError.__doc__ and "code" in l2norm.L2NormError.__doc__
    assert l2norm.__version__.count(".") == 2
