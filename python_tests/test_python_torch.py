"""l2norm with PyTorch: l2norm.normalize on tensors, the custom op torch.ops.l2norm.l2_norm
(opcheck, torch.compile without graph breaks) and the F.normalize / flash-linear-attention
signatures. The CUDA halves run where a GPU is."""

import threading

import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed")
l2norm = pytest.importorskip("l2norm", reason="the l2norm Python package is not built or installed")
l2norm_torch = pytest.importorskip("l2norm.torch")

CUDA = torch.cuda.is_available() and l2norm.cuda_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="no usable CUDA device (or l2norm built without CUDA)")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def fla_reference(x, eps=1e-6):
    x64 = x.double()
    return (x64 / torch.sqrt((x64 * x64).sum(-1, keepdim=True) + eps)).to(x.dtype)


def tolerance(dtype):
    return {torch.float32: 2e-6, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_normalize_tensor(device, dtype):
    x = torch.randn(33, 4, 128, device=device, dtype=dtype)
    y = l2norm.normalize(x)
    assert isinstance(y, torch.Tensor) and y.device == x.device and y.dtype == dtype
    torch.testing.assert_close(y, fla_reference(x), atol=tolerance(dtype), rtol=tolerance(dtype))


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
    with pytest.raises(NotImplementedError, match="output dtype"):
        l2norm_torch.l2norm(x, output_dtype=torch.float32)


@pytest.mark.parametrize("device", DEVICES)
def test_strided_views_as_they_come(device):
    qkv = torch.randn(8, 3 * 4 * 32, device=device)
    q = qkv[:, : 4 * 32].view(8, 4, 32)  # a slice of the packed projection, no copy
    torch.testing.assert_close(l2norm_torch.l2norm(q), fla_reference(q.contiguous()))
    with pytest.raises(ValueError, match="last-dim stride"):
        l2norm_torch.l2norm(qkv.view(8, 12, 32).transpose(1, 2))


def test_opcheck_forward():
    x = torch.randn(6, 40)
    samples = [(x, 1e-6, 1.0, "add"), (x.bfloat16(), 1e-12, 0.5, "clamp"), (x[:, :32], 0.0, 1.0, "add")]
    for args in samples:
        torch.library.opcheck(torch.ops.l2norm.l2_norm.default, args,
                              test_utils=("test_schema", "test_faketensor", "test_aot_dispatch_dynamic"))


@pytest.mark.skip(reason="the op's gradient needs l2_norm_backward, which lands with the training ops")
def test_opcheck_autograd():
    x = torch.randn(6, 40, requires_grad=True)
    torch.library.opcheck(torch.ops.l2norm.l2_norm.default, (x, 1e-6, 1.0, "add"))


def test_backward_says_what_is_missing():
    x = torch.randn(4, 8, requires_grad=True)
    with pytest.raises(NotImplementedError, match="l2_norm_backward"):
        l2norm_torch.l2norm(x).sum().backward()


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


@needs_cuda
def test_runs_on_the_current_stream():
    stream = torch.cuda.Stream()
    x = torch.randn(4096, 128, device="cuda", dtype=torch.bfloat16)
    expected = l2norm_torch.l2norm(x)
    torch.cuda.synchronize()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(10_000_000)  # keeps the side stream busy: a wrong stream races ahead
        y = x * 1.0
        got = l2norm_torch.l2norm(y)
        got_generic = l2norm.normalize(y)
    stream.synchronize()
    assert torch.equal(got, expected) and torch.equal(got_generic, expected)


@needs_cuda
def test_cuda_graph_capture_after_prewarm():
    x = torch.randn(32, 128, device="cuda", dtype=torch.bfloat16)
    l2norm.prewarm("bf16", 128, device=f"cuda:{x.device.index or 0}")
    out = l2norm_torch.l2norm(x)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = l2norm_torch.l2norm(x)
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    torch.testing.assert_close(captured, fla_reference(x), atol=8e-3, rtol=8e-3)
    assert not torch.equal(captured, out)
