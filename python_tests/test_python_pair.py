"""l2norm.normalize_pair and torch.ops.l2norm.l2_norm_pair: q and k in one dispatch, each bitwise
what l2norm.normalize gives it (NumPy and PyTorch, dtypes, strided slices of one projection, rstd,
output dtypes), argument errors, and the PyTorch op's opcheck, torch.compile and gradients against
float64 autograd of flash-linear-attention's formula. CUDA halves are reported skipped without a
GPU."""

import pytest

np = pytest.importorskip("numpy")
l2norm = pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")


def test_numpy_pair_matches_two_calls():
    rng = np.random.default_rng(3)
    tokens, hq, hk, d = 37, 4, 2, 128
    projection = rng.standard_normal((tokens, (hq + 2 * hk) * d)).astype(np.float32)
    q = projection[:, : hq * d].reshape(tokens, hq, d)
    k = projection[:, hq * d: (hq + hk) * d].reshape(tokens, hk, d)
    scale = d ** -0.5
    for return_rstd in (False, True):
        got_q, got_k = l2norm.normalize_pair(q, k, scale=(scale, 1.0), return_rstd=return_rstd)
        want_q = l2norm.normalize(q, scale=scale, return_rstd=return_rstd)
        want_k = l2norm.normalize(k, return_rstd=return_rstd)
        if return_rstd:
            for got, want in ((got_q, want_q), (got_k, want_k)):
                assert got[0].tobytes() == want[0].tobytes()
                assert got[1].tobytes() == want[1].tobytes()
                assert got[1].shape == want[1].shape
        else:
            assert got_q.tobytes() == want_q.tobytes()
            assert got_k.tobytes() == want_k.tobytes()


def test_numpy_pair_per_target_options_and_out():
    rng = np.random.default_rng(4)
    q = rng.standard_normal((9, 64)).astype(np.float32)
    k = rng.standard_normal((5, 3)).astype(np.float16)
    q_out = np.empty_like(q)
    k_out = np.empty((5, 3), np.float32)
    got = l2norm.normalize_pair(q, k, eps=(1e-12, 1e-3), eps_mode=("clamp", "add"),
                                out=(q_out, k_out))
    assert got[0] is q_out and got[1] is k_out
    assert q_out.tobytes() == l2norm.normalize(q, eps=1e-12, eps_mode="clamp").tobytes()
    assert k_out.tobytes() == l2norm.normalize(k, eps=1e-3, out_dtype=np.float32).tobytes()


def test_numpy_pair_errors():
    q = np.ones((4, 8), np.float32)
    with pytest.raises(ValueError, match="l2_norm_pair: scale must be one value or two"):
        l2norm.normalize_pair(q, q, scale=(1.0, 2.0, 3.0))
    # k's output is q itself: written while the same launch reads it.
    with pytest.raises(ValueError, match="second output is the same memory as first input"):
        l2norm.normalize_pair(q, q.copy(), out=(np.empty_like(q), q))
    with pytest.raises(ValueError, match="l2_norm_pair: second target: eps"):
        l2norm.normalize_pair(q, q, eps=(1e-6, -1.0))


torch = pytest.importorskip("torch", reason="PyTorch not installed")
l2norm_torch = pytest.importorskip("l2norm.torch")

CUDA = torch.cuda.is_available() and l2norm.cuda_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no usable CUDA device (or l2norm built without CUDA)")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def fused_qk(device, dtype, tokens=33, hq=4, hk=2, d=128, seed=0):
    generator = torch.Generator().manual_seed(seed)
    projection = torch.randn(tokens, (hq + 2 * hk) * d, generator=generator).to(device, dtype)
    q = projection[:, : hq * d].unflatten(-1, (hq, d))
    k = projection[:, hq * d: (hq + hk) * d].unflatten(-1, (hk, d))
    return q, k


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_pair_is_bitwise_two_normalizes(device, dtype):
    q, k = fused_qk(device, dtype)
    scale = 128 ** -0.5
    got_q, got_k = l2norm.normalize_pair(q, k, scale=(scale, 1.0))
    assert torch.equal(got_q, l2norm.normalize(q, scale=scale))
    assert torch.equal(got_k, l2norm.normalize(k))
    y_q, y_k, r_q, r_k = torch.ops.l2norm.l2_norm_pair(q, k, 1e-6, 1e-6, scale, 1.0)
    want_q, want_rq = torch.ops.l2norm.l2_norm_with_rstd(q, 1e-6, scale)
    assert torch.equal(y_q, want_q) and torch.equal(r_q, want_rq)
    want_k, want_rk = torch.ops.l2norm.l2_norm_with_rstd(k)
    assert torch.equal(y_k, want_k) and torch.equal(r_k, want_rk)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_pair_output_dtype(device):
    q, k = fused_qk(device, torch.bfloat16)
    y_q, y_k = l2norm_torch.l2_norm_pair(q, k, output_dtype=torch.float32)
    assert y_q.dtype == torch.float32 and y_k.dtype == torch.float32
    assert torch.equal(y_q, torch.ops.l2norm.l2_norm(q, out_dtype=torch.float32))
    assert torch.equal(y_k, torch.ops.l2norm.l2_norm(k, out_dtype=torch.float32))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_pair_opcheck(device):
    q, k = fused_qk(device, torch.float32, tokens=5)
    q = q.detach().requires_grad_()
    k = k.detach().requires_grad_()
    torch.library.opcheck(torch.ops.l2norm.l2_norm_pair.default, (q, k, 1e-6, 1e-6, 0.5, 1.0))


@pytest.mark.parametrize("device", DEVICES)
def test_torch_pair_compiles_without_graph_breaks(device):
    q, k = fused_qk(device, torch.float32, tokens=7)

    def step(q, k):
        a, b = l2norm_torch.l2_norm_pair(q, k, q_scale=0.25)
        return a.sum(-1) + 2 * b.sum(-1).repeat_interleave(2, dim=-1)

    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    assert torch.equal(compiled(q, k), step(q, k))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("q_scale", [1.0, 0.125])
def test_torch_pair_gradients(device, dtype, q_scale):
    q, k = fused_qk(device, dtype, tokens=9, seed=5)
    q = q.detach().clone().requires_grad_()
    k = k.detach().clone().requires_grad_()
    y_q, y_k = l2norm_torch.l2_norm_pair(q, k, q_scale=q_scale)
    generator = torch.Generator().manual_seed(6)
    dq_y = torch.randn(y_q.shape, generator=generator).to(device, dtype)
    dk_y = torch.randn(y_k.shape, generator=generator).to(device, dtype)
    dq, dk = torch.autograd.grad((y_q, y_k), (q, k), (dq_y, dk_y))
    # Each gradient is exactly the one of l2_norm_with_rstd, which saves what the pair saves.
    q2 = q.detach().clone().requires_grad_()
    k2 = k.detach().clone().requires_grad_()
    with_rstd = torch.ops.l2norm.l2_norm_with_rstd
    (dq2,) = torch.autograd.grad(with_rstd(q2, 1e-6, q_scale)[0], q2, dq_y)
    (dk2,) = torch.autograd.grad(with_rstd(k2)[0], k2, dk_y)
    assert torch.equal(dq, dq2)
    assert torch.equal(dk, dk2)
    # And close to float64 autograd of the formula.
    for x, dy, grad, scale in ((q, dq_y, dq, q_scale), (k, dk_y, dk, 1.0)):
        x64 = x.detach().double().requires_grad_()
        y64 = x64 * torch.rsqrt((x64 * x64).sum(-1, keepdim=True) + 1e-6) * scale
        (dx64,) = torch.autograd.grad(y64, x64, dy.double())
        tolerance = {torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}[dtype]
        limit = dx64.abs().amax(-1, keepdim=True) * tolerance + 1e-30
        assert ((grad.double() - dx64).abs() <= limit).all()
