"""Row-wise L2 normalization, ``y = x / sqrt(sum(x**2) + eps)`` over the last dimension, on the CPU
and NVIDIA GPUs, for any DLPack array (NumPy, PyTorch, CuPy, JAX on the CPU).

    >>> import numpy as np, l2norm
    >>> l2norm.normalize(np.array([[3.0, 4.0]], dtype=np.float32))
    array([[0.6, 0.8]], dtype=float32)

``normalize`` (optionally with each row's f32 ``rstd`` and an output dtype of its own),
``normalize_backward`` and ``normalize_backward_from_input`` (the gradient for training) work on
any DLPack producer. ``l2norm.torch`` registers the ops with ``torch.library`` (autograd,
``torch.compile``, CUDA graphs) and offers flash-linear-attention's ``l2norm`` and
``F.normalize``'s signature; ``l2norm.dask`` maps the op over a ``dask.array``.
"""

from __future__ import annotations

from typing import Any

from . import _core
from ._core import (
    L2NormError,
    cpu_thread_count,
    cuda_available,
    cuda_unavailable_reason,
    devices,
    set_cpu_thread_count,
)

__version__: str = _core.__version__
__all__ = [
    "L2NormError",
    "normalize",
    "normalize_backward",
    "normalize_backward_from_input",
    "normalize_pair",
    "prewarm_pair",
    "prewarm",
    "cuda_available",
    "cuda_unavailable_reason",
    "devices",
    "cpu_thread_count",
    "set_cpu_thread_count",
]

_CLAMP = {"add": False, "clamp": True}
# DLPack's stream conventions: 1 is CUDA's legacy default stream (what stream 0 of PyTorch and
# CuPy means), 2 the per-thread default stream.
_LEGACY_DEFAULT_STREAM = 1
# The library's dtypes by every spelling the package accepts (f32, float32, numpy.float32,
# torch.float32, ml_dtypes.bfloat16 all name one).
_DTYPE_NAMES = {"f32": "float32", "float32": "float32", "f16": "float16", "float16": "float16",
                "half": "float16", "bf16": "bfloat16", "bfloat16": "bfloat16",
                "float": "float32"}


def _clamp_of(eps_mode: str) -> bool:
    try:
        return _CLAMP[eps_mode]
    except (KeyError, TypeError):
        raise ValueError(f"l2_norm: eps_mode {eps_mode!r}; expected 'add' or 'clamp'") from None


def _dtype_name(dtype: Any) -> str:
    """'float32' for torch.float32, np.float32, np.dtype('float32'), 'f32' and 'float32' alike;
    other dtypes by their own name (which the library then rejects, naming it)."""
    text = str(dtype)
    if text.startswith("torch."):
        text = text[len("torch."):]
    elif not isinstance(dtype, str):
        try:
            import numpy as np

            text = np.dtype(dtype).name
        except TypeError:
            pass
    return _DTYPE_NAMES.get(text, text)


class _Arrays:
    """How one array library's arrays reach _core: the arrays handed over, the outputs made in the
    caller's array type on the input's device, and the stream. One instance per array type."""

    def empty(self, like: Any, shape: tuple, dtype: Any) -> Any:
        raise NotImplementedError

    def dtype(self, spec: Any) -> Any:
        """The array library's dtype for a spelling such as 'bf16' or another library's dtype."""
        raise NotImplementedError

    def args(self, *arrays: Any) -> "tuple[tuple, bool]":
        """The arrays as _core takes them, and whether uint16 arrays among them hold bfloat16."""
        return arrays, False

    def stream(self, x: Any, stream: "int | None") -> "int | None":
        return stream

    def check_input(self, x: Any) -> Any:
        return x

    def result(self, array: Any) -> Any:
        return array


class _NumpyArrays(_Arrays):
    def __init__(self) -> None:
        import numpy as np

        self.np = np
        global _numpy_array
        _core._set_eager_numpy(np.ndarray, np.empty, [np.dtype(np.float32), np.dtype(np.float16)])
        _numpy_array = np.ndarray
        try:
            import ml_dtypes

            self.bfloat16 = np.dtype(ml_dtypes.bfloat16)
        except ImportError:
            self.bfloat16 = None

    def dtype(self, spec):
        name = _dtype_name(spec)
        if name == "bfloat16":
            if self.bfloat16 is None:
                raise ValueError("l2_norm: bfloat16 NumPy arrays need ml_dtypes (pip install ml_dtypes)")
            return self.bfloat16
        try:
            return self.np.dtype(name)
        except TypeError:
            raise ValueError(f"l2_norm: unknown dtype {spec!r}") from None

    def empty(self, like, shape, dtype):
        return self.np.empty(shape, dtype)

    def args(self, *arrays):
        # NumPy cannot export ml_dtypes' bfloat16 through DLPack; its bits go as uint16.
        # Other producers' bfloat16 (JAX's) goes through DLPack as it is.
        bfloat16, ndarray = self.bfloat16, self.np.ndarray
        if bfloat16 is not None:
            for a in arrays:
                if isinstance(a, ndarray) and a.dtype == bfloat16:
                    return tuple(b.view(self.np.uint16)
                                 if isinstance(b, ndarray) and b.dtype == bfloat16 else b
                                 for b in arrays), True
        return arrays, False


class _TorchArrays(_Arrays):
    def __init__(self) -> None:
        import torch

        self.torch = torch
        self.empty_like = torch.empty_like
        self.contiguous = torch.contiguous_format
        self.increment_version = torch.autograd.graph.increment_version
        # Without the DLPack C exchange API (PyTorch before 2.10) _core imports tensors through
        # __dlpack__, which refuses tensors that require grad, and needs the stream spelled out.
        self.exchange = _core.has_exchange_api(torch.empty(0))
        self.current_stream = (torch._C._cuda_getCurrentRawStream
                               if torch.cuda.is_available() else None)

    def dtype(self, spec):
        if isinstance(spec, self.torch.dtype):
            return spec
        dtype = getattr(self.torch, _dtype_name(spec), None)
        if not isinstance(dtype, self.torch.dtype):
            raise ValueError(f"l2_norm: unknown dtype {spec!r}")
        return dtype

    def empty(self, like, shape, dtype):
        if shape == like.shape:
            return self.empty_like(like, dtype=dtype, memory_format=self.contiguous)
        return self.torch.empty(shape, dtype=dtype, device=like.device)

    def check_input(self, x):
        if x.requires_grad and self.torch.is_grad_enabled():
            raise ValueError("l2norm.normalize records no autograd graph; use l2norm.torch "
                             "(l2norm, normalize) for gradients, or pass x.detach()")
        return x

    def args(self, *arrays):
        # Lazily negated views among the inputs are materialized (outputs are never such views).
        arrays = tuple(a.resolve_neg() if a is not None and a.is_neg() else a for a in arrays)
        if self.exchange:
            return arrays, False
        return tuple(a.detach() if a is not None else None for a in arrays), False

    def stream(self, x, stream):
        if stream is not None or self.exchange or x.device.type != "cuda":
            return stream
        return self.current_stream(x.device.index) or _LEGACY_DEFAULT_STREAM


class _CupyArrays(_Arrays):
    def __init__(self) -> None:
        import cupy

        self.cupy = cupy

    def dtype(self, spec):
        try:
            return self.cupy.dtype(_dtype_name(spec))
        except TypeError:
            raise ValueError(f"l2_norm: dtype {spec!r} has no CuPy dtype") from None

    def empty(self, like, shape, dtype):
        with like.device:
            return self.cupy.empty(shape, dtype)

    def stream(self, x, stream):
        if stream is not None:
            return stream
        return self.cupy.cuda.get_current_stream().ptr or _LEGACY_DEFAULT_STREAM


class _JaxArrays(_NumpyArrays):
    """JAX arrays are immutable: results are computed into NumPy arrays and handed back as JAX
    arrays on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        import jax

        self.jax = jax

    def check_input(self, x):
        if x.devices() != {self.jax.devices("cpu")[0]}:
            raise NotImplementedError("l2norm: JAX arrays on a GPU are not supported yet "
                                      "(normalize a CuPy or PyTorch view of the data)")
        return x

    def result(self, array):
        return self.jax.dlpack.from_dlpack(array)


class _OtherArrays(_NumpyArrays):
    """Any other DLPack producer: its data is read on the legacy default stream and the results
    are NumPy arrays (CPU)."""

    def stream(self, x, stream):
        return _LEGACY_DEFAULT_STREAM if stream is None else stream


_FACTORIES = {"numpy": _NumpyArrays, "torch": _TorchArrays, "cupy": _CupyArrays,
              "jaxlib": _JaxArrays, "jax": _JaxArrays}
_arrays_by_type: dict = {}


# numpy.ndarray once l2norm has seen NumPy (normalize's fast path serves exactly this type).
_numpy_array: Any = None
_eager_numpy_l2_norm = _core._eager_numpy_l2_norm


def _arrays_for(kind: type) -> _Arrays:
    arrays = _arrays_by_type.get(kind)
    if arrays is None:
        factory = _FACTORIES.get(kind.__module__.split(".")[0], _OtherArrays)
        arrays = _arrays_by_type[kind] = factory()
    return arrays


def _output(arrays: _Arrays, like: Any, out: Any, out_dtype: Any, default_dtype: Any,
            immutable: bool = False) -> Any:
    if out is not None:
        if immutable:
            raise ValueError("l2_norm: JAX arrays are immutable; out= cannot be given for JAX input")
        if out_dtype is not None and _dtype_name(out_dtype) != _dtype_name(out.dtype):
            raise ValueError(f"l2_norm: out has dtype {out.dtype} but out_dtype is {out_dtype}")
        return out
    dtype = default_dtype if out_dtype is None else arrays.dtype(out_dtype)
    return arrays.empty(like, tuple(like.shape), dtype)


def _wrote(arrays: _Arrays, out: Any) -> None:
    """Tells PyTorch's autograd that `out` was written in place (its version counter)."""
    if isinstance(arrays, _TorchArrays):
        arrays.increment_version(out)


def normalize(
    x: Any,
    *,
    eps: float = 1e-6,
    scale: float = 1.0,
    eps_mode: str = "add",
    out: Any = None,
    out_dtype: Any = None,
    return_rstd: bool = False,
    stream: "int | None" = None,
) -> Any:
    """Normalizes each row (the last dimension) of `x`: ``x / sqrt(sum(x**2) + eps) * scale``.

    x: any DLPack producer of float32, float16 or bfloat16 (NumPy with ``ml_dtypes.bfloat16``),
        on the CPU or a CUDA device, rank 1 to 4. Strided views are read as they are, with no copy;
        the last dimension needs a unit stride and no stride may be negative (else ``ValueError``).
    eps: added to the sum of squares (``eps_mode="add"``, flash-linear-attention's convention) or
        the floor of the norm (``eps_mode="clamp"``, ``torch.nn.functional.normalize``'s).
    scale: multiplies the normalized row, rounded as a separate multiply would round.
    out: a writable array of x's shape on x's device to write into (may be `x` itself when the
        dtypes agree). Without it the result is a new array of the caller's type on x's device
        (NumPy for NumPy and unknown CPU producers, PyTorch for PyTorch, CuPy for CuPy, JAX for JAX
        on the CPU).
    out_dtype: the result's dtype (float32, float16 or bfloat16, in any spelling: ``"bf16"``,
        ``torch.bfloat16``, ``np.float16``); default x's. The sums and the scaling are in f32
        whatever the dtypes; the result is rounded once.
    return_rstd: also return each row's reciprocal norm, the factor the row was scaled by before
        `scale` (``1 / sqrt(sum + eps)`` or ``1 / max(norm, eps)``), as float32 of shape
        ``x.shape[:-1]`` in the caller's array type: ``(y, rstd)``. ``normalize_backward`` takes it.
    stream: the CUDA stream to run on, as an integer (DLPack: 1 legacy default, 2 per-thread
        default, else a ``cudaStream_t``). By default PyTorch's and CuPy's current stream, so the
        work is ordered after whatever produced `x`; other producers' data is read on the legacy
        default stream.

    Raises ``ValueError`` for arguments the op rejects (with the library's message) and
    ``L2NormError`` (a ``RuntimeError``; ``.code`` names the cause) when the device, the kernel
    compiler or the backend fails. The GIL is released while the library works. No autograd graph
    is recorded (``l2norm.torch`` has the differentiable ops).
    """
    clamp = _clamp_of(eps_mode)
    if (type(x) is _numpy_array and out_dtype is None and not return_rstd and stream is None
            and (out is None or type(out) is _numpy_array)):
        y = _eager_numpy_l2_norm(x, eps, scale, clamp, out)
        if y is not None:
            return y
    arrays = _arrays_for(type(x))
    x = arrays.check_input(x)
    y = _output(arrays, x, out, out_dtype, x.dtype, isinstance(arrays, _JaxArrays))
    rstd = arrays.empty(x, tuple(x.shape[:-1]), arrays.dtype("float32")) if return_rstd else None
    args, bf16_bits = arrays.args(x, y, rstd)
    _core.l2_norm(*args, eps, scale, clamp, arrays.stream(x, stream), bf16_bits)
    if out is not None:
        _wrote(arrays, out)
        y = out
    else:
        y = arrays.result(y)
    return (y, arrays.result(rstd)) if return_rstd else y


def normalize_backward(
    dy: Any,
    y: Any,
    rstd: Any,
    *,
    eps: float = 1e-6,
    scale: float = 1.0,
    eps_mode: str = "add",
    out: Any = None,
    out_dtype: Any = None,
    stream: "int | None" = None,
) -> Any:
    """The gradient of ``normalize`` with respect to its input, from what its forward returned:
    ``dx = scale * rstd * (dy - (dy . y) y)`` per row (clamp mode: ``scale * rstd * dy`` for rows
    whose norm was below eps).

    dy: the gradient with respect to normalize's output; y: normalize's output computed with
    ``scale=1`` (call it with the default scale and pass the scale here); rstd: its
    ``return_rstd`` output (float32, one value per row: shape ``y.shape[:-1]``, or flat).
    eps, scale, eps_mode: the forward's. dy, y and dx may each be float32, float16 or bfloat16.
    out: the array to write dx into (may be `dy` itself, in place); else a new array of dy's
    type and shape with dtype `out_dtype` (default dy's). Views, streams, errors and the GIL as
    ``normalize``. Returns dx.
    """
    clamp = _clamp_of(eps_mode)
    arrays = _arrays_for(type(dy))
    dy = arrays.check_input(dy)
    dx = _output(arrays, dy, out, out_dtype, dy.dtype, isinstance(arrays, _JaxArrays))
    args, bf16_bits = arrays.args(dy, y, rstd, dx)
    _core.l2_norm_backward(*args, eps, scale, clamp, arrays.stream(dy, stream), bf16_bits)
    if out is not None:
        _wrote(arrays, out)
        return out
    return arrays.result(dx)


def normalize_backward_from_input(
    dy: Any,
    x: Any,
    *,
    eps: float = 1e-6,
    scale: float = 1.0,
    eps_mode: str = "add",
    out: Any = None,
    out_dtype: Any = None,
    stream: "int | None" = None,
) -> Any:
    """The gradient of ``normalize`` with respect to its input `x`, from dy and x alone, for callers
    that kept neither y nor rstd: the norm and y are recomputed in f32 as the forward computes
    them. Arguments as ``normalize_backward``; dx defaults to x's dtype. Returns dx."""
    clamp = _clamp_of(eps_mode)
    arrays = _arrays_for(type(dy))
    dy = arrays.check_input(dy)
    dx = _output(arrays, dy, out, out_dtype, getattr(x, "dtype", dy.dtype),
                 isinstance(arrays, _JaxArrays))
    args, bf16_bits = arrays.args(dy, x, dx)
    _core.l2_norm_backward_from_input(*args, eps, scale, clamp, arrays.stream(dy, stream),
                                      bf16_bits)
    if out is not None:
        _wrote(arrays, out)
        return out
    return arrays.result(dx)


def _per_target(value: Any, name: str) -> "tuple[Any, Any]":
    """(value, value) for one value, the two values of a 2-tuple or list."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"l2_norm_pair: {name} must be one value or two (q's, k's), got "
                             f"{len(value)}")
        return value[0], value[1]
    return value, value


def normalize_pair(
    q: Any,
    k: Any,
    *,
    eps: Any = 1e-6,
    scale: Any = 1.0,
    eps_mode: Any = "add",
    out: Any = None,
    out_dtype: Any = None,
    return_rstd: bool = False,
    stream: "int | None" = None,
) -> Any:
    """Normalizes two independent arrays, such as the q and k heads of a Gated DeltaNet layer, in
    one dispatch (one kernel launch on CUDA): each result is bitwise what ``normalize`` gives for
    it alone. q and k may differ in shape, strides and dtype.

    eps, scale, eps_mode, out_dtype: one value for both, or a pair ``(q's, k's)``; e.g.
        ``scale=(head_dim ** -0.5, 1.0)`` scales q and not k.
    out: None, or a pair of writable arrays ``(q_out, k_out)``; neither may share memory with the
        other array's input or output (q_out may be q itself, in place).
    return_rstd: also return each row's f32 reciprocal norm.

    Returns ``(q_y, k_y)``, or ``((q_y, q_rstd), (k_y, k_rstd))`` with `return_rstd`. Same
    arrays, streams and errors as ``normalize``; both arrays must be of one array type and device.
    """
    eps_q, eps_k = _per_target(eps, "eps")
    scale_q, scale_k = _per_target(scale, "scale")
    mode_q, mode_k = _per_target(eps_mode, "eps_mode")
    dtype_q, dtype_k = _per_target(out_dtype, "out_dtype")
    out_q, out_k = (None, None) if out is None else _per_target(out, "out")
    clamp_q, clamp_k = _clamp_of(mode_q), _clamp_of(mode_k)
    arrays = _arrays_for(type(q))
    if _arrays_for(type(k)) is not arrays:
        raise ValueError(f"l2_norm_pair: q is a {type(q).__name__} and k a {type(k).__name__}; "
                         "both must be of one array type")
    q = arrays.check_input(q)
    k = arrays.check_input(k)
    immutable = isinstance(arrays, _JaxArrays)
    y_q = _output(arrays, q, out_q, dtype_q, q.dtype, immutable)
    y_k = _output(arrays, k, out_k, dtype_k, k.dtype, immutable)
    f32 = arrays.dtype("float32")
    r_q = arrays.empty(q, tuple(q.shape[:-1]), f32) if return_rstd else None
    r_k = arrays.empty(k, tuple(k.shape[:-1]), f32) if return_rstd else None
    (a_q, a_yq, a_rq, a_k, a_yk, a_rk), bf16_bits = arrays.args(q, y_q, r_q, k, y_k, r_k)
    _core.l2_norm_pair(a_q, a_yq, a_rq, eps_q, scale_q, clamp_q, a_k, a_yk, a_rk, eps_k, scale_k,
                       clamp_k, arrays.stream(q, stream), bf16_bits)
    results = []
    for y, given, rstd in ((y_q, out_q, r_q), (y_k, out_k, r_k)):
        if given is not None:
            _wrote(arrays, given)
            y = given
        else:
            y = arrays.result(y)
        results.append((y, arrays.result(rstd)) if return_rstd else y)
    return tuple(results)


def prewarm_pair(q_dtype: Any, q_dim: int, k_dtype: Any, k_dim: int, *, device: str = "cuda",
                 eps: Any = 1e-6, scale: Any = 1.0, eps_mode: Any = "add",
                 out_dtype: Any = None) -> None:
    """Compiles every kernel ``normalize_pair`` may pick on `device` for q rows of `q_dim`
    elements of `q_dtype` and k rows of `k_dim` of `k_dtype` with these options (one value or a
    pair, as ``normalize_pair`` takes them), so that it can be captured in a CUDA graph. A no-op on
    the CPU."""
    eps_q, eps_k = _per_target(eps, "eps")
    scale_q, scale_k = _per_target(scale, "scale")
    mode_q, mode_k = _per_target(eps_mode, "eps_mode")
    dtype_q, dtype_k = _per_target(out_dtype, "out_dtype")
    q_name, k_name = _dtype_name(q_dtype), _dtype_name(k_dtype)
    _core.prewarm_pair(device, q_name, q_name if dtype_q is None else _dtype_name(dtype_q), q_dim,
                       eps_q, scale_q, _clamp_of(mode_q), k_name,
                       k_name if dtype_k is None else _dtype_name(dtype_k), k_dim, eps_k, scale_k,
                       _clamp_of(mode_k))


def prewarm(dtype: Any, dim: int, *, device: str = "cuda", eps: float = 1e-6,
            scale: float = 1.0, eps_mode: str = "add", out_dtype: Any = None,
            backward: bool = False, streams: "tuple[int, ...] | list[int]" = ()) -> None:
    """Readies `device` ("cuda", "cuda:N"; a no-op for "cpu") for CUDA-graph capture of these
    calls: compiles every kernel ``normalize`` (with or without rstd) may pick for rows of `dim`
    elements of `dtype` written as `out_dtype` (default `dtype`) with these options, and with
    `backward` those of ``normalize_backward`` (dy and y of out_dtype, dx of dtype) and
    ``normalize_backward_from_input``; then makes the encoder of each stream in `streams`
    (``cudaStream_t`` values as integers), which must not happen during a capture. Later calls
    compile nothing. Dtypes in any spelling ("bf16", "float16", torch or NumPy dtypes). Raises
    ``L2NormError`` (code 'unsupported') where the device cannot run work."""
    clamp = _clamp_of(eps_mode)
    name = _dtype_name(dtype)
    out_name = name if out_dtype is None else _dtype_name(out_dtype)
    _core.prewarm(device, name, dim, eps, scale, clamp, None if out_name == name else out_name)
    if backward:
        _core.prewarm_backward(device, out_name, out_name, name, dim, eps, scale, clamp, False)
        _core.prewarm_backward(device, out_name, name, name, dim, eps, scale, clamp, True)
    for stream in streams:
        _core.make_encoder(device, stream)
