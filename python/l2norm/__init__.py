"""Row-wise L2 normalization, ``y = x / sqrt(sum(x**2) + eps)`` over the last dimension, on the CPU
and NVIDIA GPUs, for any DLPack array (NumPy, PyTorch, CuPy, JAX on the CPU).

    >>> import numpy as np, l2norm
    >>> l2norm.normalize(np.array([[3.0, 4.0]], dtype=np.float32))
    array([[0.6, 0.8]], dtype=float32)

``l2norm.torch`` registers the op with ``torch.library`` (``torch.compile`` friendly) and offers
flash-linear-attention's ``l2norm`` and ``F.normalize``'s signature; ``l2norm.dask`` maps it over a
``dask.array``.
"""

from __future__ import annotations

from typing import Any, Callable

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

# A call: (input, output, stream, bf16_bits) handed to _core, and the array returned.
_Prepared = tuple[Any, Any, int, bool, Any]
_preparers: dict[type, Callable[[Any, Any, "int | None"], _Prepared]] = {}


def _clamp_of(eps_mode: str) -> bool:
    try:
        return _CLAMP[eps_mode]
    except (KeyError, TypeError):
        raise ValueError(f"l2_norm: eps_mode {eps_mode!r}; expected 'add' or 'clamp'") from None


def _dtype_name(dtype: Any) -> str:
    """'float32' for torch.float32, np.float32, np.dtype('float32') and 'float32' alike."""
    text = str(dtype)
    if text.startswith("torch."):
        return text[len("torch."):]
    try:
        import numpy as np

        return np.dtype(dtype).name
    except TypeError:
        return text


def _numpy_preparer() -> Callable[[Any, Any, "int | None"], _Prepared]:
    import numpy as np

    try:
        import ml_dtypes

        bfloat16 = np.dtype(ml_dtypes.bfloat16)
    except ImportError:
        bfloat16 = None

    def prepare(x, out, stream):
        if out is None:
            out = np.empty(x.shape, x.dtype)
        if bfloat16 is not None and x.dtype == bfloat16:
            # NumPy cannot export ml_dtypes' bfloat16 through DLPack; its bits can go as uint16.
            if out.dtype != bfloat16:
                raise ValueError(f"l2_norm: output dtype {out.dtype} differs from input dtype bfloat16")
            return x.view(np.uint16), out.view(np.uint16), 0, True, out
        return x, out, 0, False, out

    return prepare


def _torch_preparer() -> Callable[[Any, Any, "int | None"], _Prepared]:
    import torch

    current_stream = torch._C._cuda_getCurrentRawStream if torch.cuda.is_available() else None

    def prepare(x, out, stream):
        if out is None:
            out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        if x.device.type == "cuda" and stream is None:
            stream = current_stream(x.device.index) or _LEGACY_DEFAULT_STREAM
        return x, out, stream or 0, False, out

    return prepare


def _cupy_preparer() -> Callable[[Any, Any, "int | None"], _Prepared]:
    import cupy

    def prepare(x, out, stream):
        if out is None:
            with x.device:
                out = cupy.empty(x.shape, x.dtype)
        if stream is None:
            stream = cupy.cuda.get_current_stream().ptr or _LEGACY_DEFAULT_STREAM
        return x, out, stream, False, out

    return prepare


def _jax_preparer() -> Callable[[Any, Any, "int | None"], _Prepared]:
    import jax
    import numpy as np

    def prepare(x, out, stream):
        if out is not None:
            raise ValueError("l2_norm: JAX arrays are immutable; out= cannot be a JAX array")
        if x.devices() != {jax.devices("cpu")[0]}:
            raise NotImplementedError("l2norm.normalize: JAX arrays on a GPU are not supported yet "
                                      "(normalize a CuPy or PyTorch view of the data)")
        host = np.empty(x.shape, x.dtype)
        return x, host, 0, False, jax.dlpack.from_dlpack(host)

    return prepare


def _generic_preparer(x, out, stream):
    """Any other DLPack producer: the result is a NumPy array (CPU) unless `out` is given."""
    if out is None:
        import numpy as np

        out = np.empty(x.shape, np.dtype(str(x.dtype)))
    return x, out, _LEGACY_DEFAULT_STREAM if stream is None else stream, False, out


def _preparer_for(kind: type) -> Callable[[Any, Any, "int | None"], _Prepared]:
    preparer = _preparers.get(kind)
    if preparer is None:
        module = kind.__module__.split(".")[0]
        factory = {"numpy": _numpy_preparer, "torch": _torch_preparer, "cupy": _cupy_preparer,
                   "jaxlib": _jax_preparer, "jax": _jax_preparer}.get(module)
        preparer = factory() if factory is not None else _generic_preparer
        _preparers[kind] = preparer
    return preparer


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
    out: a writable array of x's shape and dtype on x's device to write into (may be `x` itself).
        Without it the result is a new array of the caller's type on x's device (NumPy for NumPy
        and unknown CPU producers, PyTorch for PyTorch, CuPy for CuPy, JAX for JAX on the CPU).
    out_dtype, return_rstd: an output dtype other than x's and the f32 reciprocal norms come with
        the training ops; for now they raise ``NotImplementedError``.
    stream: the CUDA stream to run on, as an integer (DLPack: 1 legacy default, 2 per-thread
        default, else a ``cudaStream_t``). By default PyTorch's and CuPy's current stream, so the
        work is ordered after whatever produced `x`; other producers' data is read on the legacy
        default stream.

    Raises ``ValueError`` for arguments the op rejects (with the library's message) and
    ``L2NormError`` (a ``RuntimeError``; ``.code`` names the cause) when the device, the kernel
    compiler or the backend fails. The GIL is released while the library works.
    """
    if return_rstd:
        raise NotImplementedError(
            "l2norm.normalize(return_rstd=True): the f32 rstd output lands with the training ops "
            "(l2_norm with rstd, l2_norm_backward)")
    if out_dtype is not None and _dtype_name(out_dtype) != _dtype_name(x.dtype):
        raise NotImplementedError(
            f"l2norm.normalize(out_dtype={out_dtype}) on {x.dtype} input: an output dtype other "
            "than the input's lands with the training ops")
    clamp = _clamp_of(eps_mode)
    x_arg, out_arg, stream_arg, bf16_bits, result = _preparer_for(type(x))(x, out, stream)
    _core.l2_norm(x_arg, out_arg, eps, scale, clamp, stream_arg, bf16_bits)
    return result


def prewarm(dtype: str, dim: int, *, device: str = "cuda", eps: float = 1e-6,
            scale: float = 1.0, eps_mode: str = "add") -> None:
    """Compiles every kernel `normalize` may pick on `device` ("cuda", "cuda:N"; a no-op for "cpu")
    for rows of `dim` elements of `dtype` ("f32", "f16", "bf16") with these options, so later
    calls compile nothing and may be captured into a CUDA graph. Raises ``L2NormError`` (code
    'unsupported') where the device cannot run work."""
    _core.prewarm(device, dtype, dim, eps, scale, _clamp_of(eps_mode))
