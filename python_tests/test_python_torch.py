"""l2norm with PyTorch: l2norm.normalize on tensors, the custom ops torch.ops.l2norm.* (opcheck,
fake tensors, autograd, torch.compile without graph breaks), the F.normalize and
flash-linear-attention signatures forward and backward against float64 autograd of the reference
formulas, the eager path against the ops, CUDA streams and CUDA-graph capture. The CUDA halves run
where a GPU is and are reported skipped elsewhere."""

import threading

import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed")
l2norm = pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")
l2norm_torch = pytest.importorskip("l2norm.torch")

from l2norm_test_support import requires_out_dtype  # noqa: E402

CUDA = torch.cuda.is_available() and l2norm.cuda_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no usable CUDA device (or l2norm built without CUDA)")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
ops = torch.ops.l2norm


def fla_formula(x, eps=1e-6):
    """flash-linear-attention's l2norm: x * rsqrt(sum(x^2) + eps)."""
    return x * torch.rsqrt((x * x).sum(-1, keepdim=True) + eps)


def f_normalize_formula(x, eps=1e-12):
    """torch.nn.functional.normalize over the last dim: x / clamp_min(norm, eps)."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(eps)


def fla_reference(x, eps=1e-6):
    return fla_formula(x.double(), eps).to(x.dtype)


def tolerance(dtype):
    return {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]


# Gradient tolerance relative to the row's largest gradient: y is saved in the output dtype, so
# the gradient carries its rounding.
GRAD_TOLERANCE = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}


def reference_grad(formula, x, dy, **options):
    """The gradient of `formula` at x in float64 autograd, and its value."""
    x64 = x.detach().double().requires_grad_()
    y64 = formula(x64, **options)
    (dx64,) = torch.autograd.grad(y64, x64, dy.double())
    return y64.detach(), dx64


def assert_grad_close(got, expected, tolerance_):
    """|got - expected| within tolerance_ of each row's largest expected value; where the expected
    value overflows got's dtype (the clamp's dy / 1e-12 in half precision), got is that infinity."""
    rounded = expected.to(got.dtype)
    overflow = torch.isinf(rounded)
    assert torch.equal(got[overflow], rounded[overflow])
    got = torch.where(overflow, 0, got.double())
    expected = torch.where(overflow, 0, expected)
    scale = expected.abs().amax(-1, keepdim=True)
    error = (got - expected).abs()
    assert bool((error <= tolerance_ * scale).all()), float(error.max())


# ---- l2norm.normalize (the DLPack entry) on tensors ----

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_tensor(device, dtype):
    x = torch.randn(33, 4, 128, device=device, dtype=dtype)
    y = l2norm.normalize(x)
    assert isinstance(y, torch.Tensor) and y.device == x.device and y.dtype == dtype
    torch.testing.assert_close(y, fla_reference(x), atol=tolerance(dtype), rtol=tolerance(dtype))
    y2, rstd = l2norm.normalize(x, return_rstd=True)
    assert torch.equal(y2, y) and rstd.dtype == torch.float32 and rstd.shape == x.shape[:-1]
    assert rstd.device == x.device
    x64 = x.double()
    torch.testing.assert_close(rstd.double(), torch.rsqrt((x64 * x64).sum(-1) + 1e-6),
                               rtol=2e-6, atol=0)


@pytest.mark.parametrize("device", DEVICES)
def test_normalize_tensor_backward_functions(device):
    x = torch.randn(40, 96, device=device)
    dy = torch.randn(40, 96, device=device)
    y, rstd = l2norm.normalize(x, return_rstd=True)
    _, expected = reference_grad(fla_formula, x, dy)
    assert_grad_close(l2norm.normalize_backward(dy, y, rstd), expected, 2e-5)
    assert_grad_close(l2norm.normalize_backward_from_input(dy, x), expected, 2e-5)
    in_place = dy.clone()
    assert l2norm.normalize_backward(in_place, y, rstd, out=in_place) is in_place
    assert torch.equal(in_place, l2norm.normalize_backward(dy, y, rstd))


def test_normalize_tensor_refuses_what_autograd_would_miss():
    x = torch.randn(4, 8, requires_grad=True)
    with pytest.raises(ValueError, match="l2norm.torch"):
        l2norm.normalize(x)
    with torch.no_grad():
        assert l2norm.normalize(x).requires_grad is False
    assert torch.equal(l2norm.normalize(x.detach()), l2norm_torch.l2norm(x.detach()))


def test_normalize_tensor_out_bumps_the_version():
    x = torch.randn(4, 8)
    version = x._version
    l2norm.normalize(x, out=x)
    assert x._version > version  # autograd sees the in-place write


def test_negated_views_are_read_as_their_values():
    z = torch.randn(8, 16, dtype=torch.complex64)
    imag = z.conj().imag  # a lazily negated view
    assert imag.is_neg()
    expected = fla_reference(imag.resolve_neg())
    torch.testing.assert_close(l2norm.normalize(imag), expected)
    torch.testing.assert_close(l2norm_torch.l2norm(imag), expected)


def test_without_the_exchange_api(monkeypatch):
    """PyTorch before 2.10 has no DLPack C exchange API: tensors then go through __dlpack__
    (detached, since it refuses tensors that require grad) with the stream named in Python."""
    x = torch.randn(3, 20, 64, requires_grad=True)
    dy = torch.randn(3, 20, 64)
    expected_y, expected_rstd = ops.l2_norm_with_rstd(x.detach())
    (expected_dx,) = torch.autograd.grad(ops.l2_norm_with_rstd(x)[0], x, dy)
    (expected_from_input,) = torch.autograd.grad(ops.l2_norm(x), x, dy)
    monkeypatch.setattr(l2norm_torch, "_EXCHANGE", False)
    monkeypatch.setattr(l2norm._arrays_for(torch.Tensor), "exchange", False)
    l2norm._core._use_exchange_api(False)
    try:
        assert not l2norm._core.has_exchange_api(x)
        y, rstd = ops.l2_norm_with_rstd(x.detach())
        assert torch.equal(y, expected_y) and torch.equal(rstd, expected_rstd)
        (dx,) = torch.autograd.grad(ops.l2_norm_with_rstd(x)[0], x, dy)
        (dx_from_input,) = torch.autograd.grad(ops.l2_norm(x), x, dy)
        assert torch.equal(dx, expected_dx) and torch.equal(dx_from_input, expected_from_input)
        (eager,) = torch.autograd.grad(l2norm_torch.l2norm(x), x, dy)
        assert torch.equal(eager, expected_dx)
        assert torch.equal(l2norm.normalize(x.detach()), expected_y)
    finally:
        l2norm._core._use_exchange_api(True)
    assert l2norm._core.has_exchange_api(x) == hasattr(torch.Tensor, "__dlpack_c_exchange_api__")


# ---- the familiar signatures, forward ----

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_f_normalize(device, dtype):
    x = torch.randn(64, 96, device=device, dtype=dtype)
    x[5] = 0
    expected = torch.nn.functional.normalize(x.float(), dim=-1).to(dtype)
    got = l2norm_torch.normalize(x)
    torch.testing.assert_close(got, expected, atol=tolerance(dtype), rtol=tolerance(dtype))
    assert not got[5].any()
    with pytest.raises(ValueError, match="last dimension"):
        l2norm_torch.normalize(x, dim=0)


@pytest.mark.parametrize("device", DEVICES)
def test_fla_signatures(device):
    x = torch.randn(2, 16, 4, 64, device=device, dtype=torch.bfloat16)
    expected = fla_reference(x)
    for got in (l2norm_torch.l2norm(x), l2norm_torch.l2_norm(x, 1e-6), l2norm_torch.L2Norm()(x)):
        torch.testing.assert_close(got, expected, atol=8e-3, rtol=8e-3)
    assert l2norm_torch.l2norm(x, output_dtype=torch.bfloat16).dtype == torch.bfloat16
    assert "output_dtype=None" in repr(l2norm_torch.L2Norm())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("in_dtype, out_dtype", [(torch.bfloat16, torch.float32),
                                                 (torch.float32, torch.bfloat16),
                                                 (torch.float16, torch.float32)])
def test_fla_output_dtype_forward_and_gradient(device, in_dtype, out_dtype):
    requires_out_dtype(device)
    x = torch.randn(48, 4, 64, device=device, dtype=in_dtype, requires_grad=True)
    y = l2norm_torch.l2norm(x, output_dtype=out_dtype)
    assert y.dtype == out_dtype
    torch.testing.assert_close(y, fla_formula(x.detach().double()).to(out_dtype),
                               atol=tolerance(out_dtype), rtol=tolerance(out_dtype))
    dy = torch.randn_like(y)
    y.backward(dy)
    assert x.grad.dtype == in_dtype
    _, expected = reference_grad(fla_formula, x, dy)
    worse = out_dtype if GRAD_TOLERANCE[out_dtype] > GRAD_TOLERANCE[in_dtype] else in_dtype
    assert_grad_close(x.grad, expected, GRAD_TOLERANCE[worse])
    module = l2norm_torch.L2Norm(output_dtype=out_dtype)
    assert torch.equal(module(x.detach()), y.detach())


@pytest.mark.parametrize("device", DEVICES)
def test_strided_views_as_they_come(device):
    qkv = torch.randn(8, 3 * 4 * 32, device=device)
    q = qkv[:, : 4 * 32].view(8, 4, 32)  # a slice of the packed projection, no copy
    torch.testing.assert_close(l2norm_torch.l2norm(q), fla_reference(q.contiguous()))
    with pytest.raises(ValueError, match="last-dim stride"):
        l2norm_torch.l2norm(qkv.view(8, 12, 32).transpose(1, 2))


# ---- gradients against float64 autograd of the reference formulas ----

def strided_inputs(device, dtype):
    """q and k sliced out of a fused projection, a transposed (heads-first) view of them, a plain
    tensor with zero rows; each a leaf that requires grad through the view."""
    generator = torch.Generator(device="cpu").manual_seed(14)
    fused = torch.randn(2, 24, 3 * 4 * 64, generator=generator).to(device=device, dtype=dtype)
    fused[0, 3] = 0  # zero rows in q, k and v
    fused.requires_grad_()
    q, k, _ = fused.split(4 * 64, dim=-1)
    q = q.view(2, 24, 4, 64)  # (batch, time, heads, dim): strides (4608, 768, 64, 1)
    k = k.view(2, 24, 4, 64).transpose(1, 2)  # heads-first view, no copy
    plain = torch.randn(50, 100, generator=generator).to(device=device, dtype=dtype)
    plain[7] = 0
    plain.requires_grad_()
    return [("q slice", fused, q), ("k transposed", fused, k), ("plain", plain, plain)]


API = {
    "fla l2norm": (lambda x: l2norm_torch.l2norm(x), fla_formula, {}),
    "fla L2Norm": (lambda x: l2norm_torch.L2Norm(eps=1e-5)(x), fla_formula, {"eps": 1e-5}),
    "F.normalize": (lambda x: l2norm_torch.normalize(x), f_normalize_formula, {}),
    "F.normalize eps 1e-2": (lambda x: l2norm_torch.normalize(x, eps=1e-2), f_normalize_formula,
                             {"eps": 1e-2}),
    "add mode via normalize": (lambda x: l2norm_torch.normalize(x, eps=1e-6, eps_mode="add"),
                               fla_formula, {"eps": 1e-6}),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("api", list(API))
def test_gradients_match_float64_autograd(device, dtype, api):
    function, formula, options = API[api]
    for name, leaf, x in strided_inputs(device, dtype):
        y = function(x)
        expected_y, _ = reference_grad(formula, x, torch.zeros_like(x), **options)
        assert y.dtype == dtype and y.is_contiguous()
        torch.testing.assert_close(y, expected_y.to(dtype), atol=tolerance(dtype),
                                   rtol=tolerance(dtype), msg=f"{api} {name} forward")
        dy = torch.randn_like(y)
        (dx,) = torch.autograd.grad(y, x, dy)
        _, expected = reference_grad(formula, x, dy, **options)
        assert dx.dtype == dtype and dx.shape == x.shape
        assert_grad_close(dx, expected, GRAD_TOLERANCE[dtype])
        (dleaf,) = torch.autograd.grad(function(x), leaf, dy)  # through the slice into the leaf
        assert dleaf.shape == leaf.shape


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradient_of_f_normalize_matches_pytorch(dtype):
    x = torch.randn(64, 96, dtype=dtype, requires_grad=True)
    x.data[3] = 0
    dy = torch.randn(64, 96, dtype=dtype)
    (got,) = torch.autograd.grad(l2norm_torch.normalize(x), x, dy)
    x32 = x.detach().float().requires_grad_()
    (expected,) = torch.autograd.grad(torch.nn.functional.normalize(x32, dim=-1), x32, dy.float())
    assert_grad_close(got, expected.double(), GRAD_TOLERANCE[dtype])


@pytest.mark.parametrize("scale", [1.0, 0.25])
@pytest.mark.parametrize("mode", ["add", "clamp"])
def test_op_gradients(scale, mode):
    x = torch.randn(3, 17, 80, dtype=torch.float32, requires_grad=True)
    dy = torch.randn(3, 17, 80)

    def formula(t):
        return scale * (fla_formula(t, 1e-4) if mode == "add" else f_normalize_formula(t, 1e-4))

    _, expected = reference_grad(formula, x, dy)
    for op in (ops.l2_norm, lambda *a: ops.l2_norm_with_rstd(*a)[0]):
        (dx,) = torch.autograd.grad(op(x, 1e-4, scale, mode), x, dy)
        assert_grad_close(dx, expected, 2e-5)


def test_sum_backward_hands_an_expanded_gradient():
    x = torch.randn(16, 64, requires_grad=True)
    l2norm_torch.l2norm(x).sum().backward()  # dy has stride 0 in every dim
    _, expected = reference_grad(fla_formula, x, torch.ones(16, 64))
    assert_grad_close(x.grad, expected, 2e-5)


def test_rstd_output_is_not_differentiable_and_saved_state_is_checked():
    x = torch.randn(8, 32, requires_grad=True)
    y, rstd = ops.l2_norm_with_rstd(x)
    assert y.requires_grad and not rstd.requires_grad
    torch.testing.assert_close(rstd, torch.rsqrt((x.detach() ** 2).sum(-1) + 1e-6))
    y = l2norm_torch.l2norm(x)
    with torch.no_grad():
        y.mul_(2)  # y is saved for the backward
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_double_backward_raises_a_clear_error():
    x = torch.randn(4, 8, requires_grad=True)
    (dx,) = torch.autograd.grad(l2norm_torch.l2norm(x).sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        dx.sum().backward()
    (dx,) = torch.autograd.grad(ops.l2_norm_with_rstd(x)[0].sum(), x, create_graph=True)
    with pytest.raises(NotImplementedError, match="double backward"):
        dx.sum().backward()


# ---- the eager path calls what the ops call ----

@pytest.mark.parametrize("dtype", DTYPES)
def test_eager_path_matches_the_ops_bitwise(dtype):
    x = torch.randn(31, 4, 96, dtype=dtype)
    assert torch.equal(l2norm_torch.l2norm(x), ops.l2_norm(x))
    assert torch.equal(l2norm_torch.normalize(x), ops.l2_norm(x, 1e-12, 1.0, "clamp"))
    leaf = x.clone().requires_grad_()
    dy = torch.randn_like(x)
    (eager,) = torch.autograd.grad(l2norm_torch.l2norm(leaf), leaf, dy)
    (op,) = torch.autograd.grad(ops.l2_norm_with_rstd(leaf)[0], leaf, dy)
    assert torch.equal(eager, op)


@pytest.mark.parametrize("device", DEVICES)
def test_eager_path_outputs_of_every_layout(device):
    # The eager path allocates like x where x is contiguous (even with odd strides on dims of
    # size 1) and contiguous otherwise; each result is the op's, and dense with a unit last stride.
    base = torch.randn(6, 1, 64, device=device)
    odd = base.as_strided((6, 1, 64), (64, 1000, 1))
    transposed = torch.randn(64, 6, device=device).t()
    sliced = torch.randn(6, 3, 64, device=device)[:, 1]
    for x in (odd, sliced, transposed.contiguous(), base[:, :, ::1]):
        for out_dtype in (None, torch.bfloat16):
            y = l2norm_torch.l2norm(x, 1e-6, out_dtype)
            assert y.dtype == (out_dtype or x.dtype) and y.shape == x.shape
            assert y.stride()[-1] == 1 and y.is_contiguous()
            assert torch.equal(y, ops.l2_norm(x, 1e-6, 1.0, "add", out_dtype))
    # A last dim that is not unit-stride is the library's error, as through the op.
    with pytest.raises(ValueError, match="last-dim stride is 6, must be 1"):
        l2norm_torch.l2norm(transposed)


def test_modes_and_the_profiler_see_the_op():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Recorder(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.append(str(func))
            return func(*args, **(kwargs or {}))

    x = torch.randn(4, 32)
    with Recorder() as recorder:
        l2norm_torch.l2norm(x)
        l2norm_torch.normalize(x.requires_grad_())
    assert recorder.names[:1] == ["l2norm.l2_norm.default"], recorder.names
    assert "l2norm.l2_norm_with_rstd.default" in recorder.names
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profile:
        l2norm_torch.l2norm(x.detach())
    assert any(event.name == "l2norm::l2_norm" for event in profile.events())


# ---- opcheck, fake tensors, torch.compile ----

OPCHECK_TESTS = ("test_schema", "test_autograd_registration", "test_faketensor",
                 "test_aot_dispatch_static", "test_aot_dispatch_dynamic")


def forward_samples(device):
    x = torch.randn(6, 40, device=device)
    return [
        (x.clone().requires_grad_(), 1e-6, 1.0, "add", None),
        (x.bfloat16().requires_grad_(), 1e-12, 0.5, "clamp", None),
        (x.half()[:, :32].requires_grad_(), 0.0, 1.0, "add", None),
        (x.view(2, 3, 40).transpose(0, 1).requires_grad_(), 1e-3, 2.0, "clamp", None),
        (torch.zeros(3, 16, device=device, requires_grad=True), 1e-6, 1.0, "add", None),
    ]


def backward_samples(device):
    x = torch.randn(6, 40, device=device)
    y, rstd = ops.l2_norm_with_rstd(x)
    dy = torch.randn(6, 40, device=device)
    return (
        [(dy, y, rstd, 1e-6, 1.0, "add", None), (dy.half(), y.bfloat16(), rstd, 1e-6, 0.5, "clamp",
                                                   torch.float32)],
        [(dy, x, 1e-6, 1.0, "add", None), (dy.bfloat16(), x, 1e-3, 2.0, "clamp", torch.float16)],
    )


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_every_op(device):
    for args in forward_samples(device):
        for op in (ops.l2_norm.default, ops.l2_norm_with_rstd.default):
            torch.library.opcheck(op, args, test_utils=OPCHECK_TESTS)
    # The backward ops are not differentiable (double backward raises), so their samples do not
    # require grad; opcheck then checks the schema, the autograd registration, the fake kernel and
    # AOT dispatch.
    with_y, from_input = backward_samples(device)
    for args in with_y:
        torch.library.opcheck(ops.l2_norm_backward.default, args, test_utils=OPCHECK_TESTS)
    for args in from_input:
        torch.library.opcheck(ops.l2_norm_backward_from_input.default, args,
                              test_utils=OPCHECK_TESTS)


@pytest.mark.parametrize("device", DEVICES)
def test_opcheck_output_dtypes(device):
    requires_out_dtype(device)
    x = torch.randn(6, 40, device=device)
    for in_dtype, out_dtype in ((torch.float32, torch.bfloat16), (torch.bfloat16, torch.float32),
                                (torch.float16, torch.bfloat16)):
        args = (x.to(in_dtype).requires_grad_(), 1e-6, 1.0, "add", out_dtype)
        for op in (ops.l2_norm.default, ops.l2_norm_with_rstd.default):
            torch.library.opcheck(op, args, test_utils=OPCHECK_TESTS)


def test_fake_tensors_give_shapes_and_dtypes():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        x = torch.empty(5, 3, 64, dtype=torch.bfloat16)
        y, rstd = ops.l2_norm_with_rstd(x, 1e-6, 1.0, "add", torch.float32)
        assert y.shape == x.shape and y.dtype == torch.float32 and rstd.shape == (5, 3)
        assert rstd.dtype == torch.float32
        assert ops.l2_norm_backward_from_input(y, x).dtype == torch.bfloat16
        assert ops.l2_norm_backward(y, y, rstd).dtype == torch.float32
        with pytest.raises(ValueError, match="eps_mode"):
            ops.l2_norm(x, 1e-6, 1.0, "max")


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph(device):
    torch._dynamo.reset()

    def block(q, k):
        return l2norm_torch.l2norm(q) * 2.0, l2norm_torch.normalize(k + 1.0)

    compiled = torch.compile(block, fullgraph=True, dynamic=True)
    for rows in (8, 24):
        q = torch.randn(rows, 64, device=device)
        k = torch.randn(rows, 64, device=device)
        for got, expected in zip(compiled(q, k), block(q, k)):
            torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("device", DEVICES)
def test_compile_fullgraph_with_gradients(device):
    torch._dynamo.reset()

    def attention_inputs(qkv):
        q, k, v = qkv.view(qkv.shape[0], qkv.shape[1], 3, 4, 32).unbind(2)
        return (l2norm_torch.l2norm(q) * l2norm_torch.normalize(k, eps=1e-6)).sum() + v.sum()

    compiled = torch.compile(attention_inputs, fullgraph=True)
    qkv = torch.randn(2, 16, 3 * 4 * 32, device=device, requires_grad=True)
    (expected,) = torch.autograd.grad(attention_inputs(qkv), qkv)
    (got,) = torch.autograd.grad(compiled(qkv), qkv)
    torch.testing.assert_close(got, expected)


# ---- threads ----

def test_threads_on_tensors_match_single_threaded():
    inputs = [torch.randn(129, 256, dtype=dtype) for dtype in DTYPES * 2]
    expected = [l2norm_torch.l2norm(x) for x in inputs]
    failures = []

    def hammer(index):
        for _ in range(40):
            if not torch.equal(l2norm_torch.l2norm(inputs[index]), expected[index]):
                failures.append(index)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# ---- CUDA: streams, graphs, host time ----

def test_prewarm_is_a_no_op_for_the_cpu():
    l2norm_torch.prewarm(torch.bfloat16, 128, device="cpu")
    l2norm_torch.prewarm(torch.float32, 64, device=torch.device("cpu"), output_dtype=torch.float16)
    with pytest.raises(ValueError, match="eps_mode"):
        l2norm_torch.prewarm(torch.float32, 64, device="cpu", eps_mode="max")


@needs_cuda
def test_runs_on_the_current_stream():
    stream = torch.cuda.Stream()
    x = torch.randn(4096, 128, device="cuda", dtype=torch.bfloat16)
    expected = l2norm_torch.l2norm(x)
    expected_grad = l2norm.normalize_backward_from_input(x, x)
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(10_000_000)  # keeps the side stream busy: a wrong stream races ahead
        y = x * 1.0
        got = l2norm_torch.l2norm(y)
        got_generic = l2norm.normalize(y)
        got_op = ops.l2_norm(y)
        got_grad = ops.l2_norm_backward_from_input(y, y)
    stream.synchronize()
    assert torch.equal(got, expected) and torch.equal(got_generic, expected)
    assert torch.equal(got_op, expected) and torch.equal(got_grad, expected_grad)


@needs_cuda
def test_one_encoder_per_stream_shared_by_threads():
    stream = torch.cuda.Stream()
    x = torch.randn(64, 128, device="cuda")
    with torch.cuda.stream(stream):
        l2norm_torch.l2norm(x)
    before = l2norm._core.cuda_encoder_streams()
    assert (f"cuda:{x.device.index}", stream.cuda_stream) in before

    def other_thread():
        with torch.cuda.stream(stream):
            l2norm_torch.l2norm(x)

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join()
    assert l2norm._core.cuda_encoder_streams() == before


def capture(fn, stream=None):
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, stream=stream):
        result = fn()
    return graph, result


@needs_cuda
def test_cuda_graph_capture_after_prewarm():
    # A fresh capture stream: the encoder for it must come from prewarm, not from an earlier call.
    capture_stream = torch.cuda.Stream()
    x = torch.randn(32, 128, device="cuda", dtype=torch.bfloat16)
    l2norm_torch.prewarm(torch.bfloat16, 128, streams=[capture_stream])
    eager = l2norm_torch.l2norm(x)
    graph, captured = capture(lambda: l2norm_torch.l2norm(x), capture_stream)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(captured, fla_reference(x), atol=8e-3, rtol=8e-3)
    assert not torch.equal(captured, eager)


@needs_cuda
def test_cuda_graph_default_capture_stream_after_prewarm():
    x = torch.randn(64, 128, device="cuda", dtype=torch.float16)
    l2norm_torch.prewarm(torch.float16, 128, eps=1e-12, eps_mode="clamp")  # default streams
    graph, (y, rstd) = capture(lambda: ops.l2_norm_with_rstd(x, 1e-12, 1.0, "clamp"))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y, l2norm_torch.normalize(x))
    torch.testing.assert_close(rstd, 1 / x.float().norm(dim=-1), rtol=2e-6, atol=0)


@needs_cuda
def test_cuda_graph_capture_without_prewarm_raises_a_clear_error():
    x = torch.randn(32, 96, device="cuda", dtype=torch.float32)
    l2norm_torch.prewarm(torch.float32, 96, streams=[])  # kernels ready, no encoder made
    fresh = torch.cuda.Stream()
    with pytest.raises(l2norm.L2NormError) as caught:
        capture(lambda: l2norm_torch.l2norm(x), fresh)
    assert caught.value.code == "unsupported"
    message = str(caught.value)
    assert "being captured" in message and "l2norm.torch.prewarm" in message
    # The capture ended cleanly: the device and the same stream work afterwards.
    with torch.cuda.stream(fresh):
        y = l2norm_torch.l2norm(x)
    fresh.synchronize()
    torch.testing.assert_close(y, fla_reference(x))


@needs_cuda
def test_cuda_graph_of_forward_and_backward():
    # make_graphed_callables captures the backward too (PyTorch runs it on its autograd thread):
    # the prewarmed encoders serve every thread.
    module = torch.nn.Sequential(torch.nn.Linear(128, 4 * 64), torch.nn.Unflatten(-1, (4, 64)),
                                 l2norm_torch.L2Norm()).cuda()
    l2norm_torch.prewarm(torch.float32, 64, backward=True)
    sample = torch.randn(16, 128, device="cuda", requires_grad=True)
    graphed = torch.cuda.make_graphed_callables(module, (sample,))
    x = torch.randn(16, 128, device="cuda", requires_grad=True)
    dy = torch.randn(16, 4, 64, device="cuda")
    graphed(x).backward(dy)
    graph_grad = x.grad.clone()
    x.grad = None
    module(x).backward(dy)
    torch.testing.assert_close(graph_grad, x.grad)


@needs_cuda
def test_cuda_graph_under_torch_compile():
    torch._dynamo.reset()
    l2norm_torch.prewarm(torch.bfloat16, 64)
    compiled = torch.compile(lambda x: l2norm_torch.l2norm(x) * 2.0, mode="reduce-overhead",
                             fullgraph=True)
    x = torch.randn(32, 64, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):  # warm-up, recording, replay
        got = compiled(x)
    torch.testing.assert_close(got, fla_reference(x) * 2.0, atol=2e-2, rtol=8e-3)


