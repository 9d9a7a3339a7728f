"""PyTorch front end: custom ops registered with ``torch.library`` (CPU and CUDA tensors, fake
implementations for ``torch.compile`` and FakeTensor tracing, autograd) and the familiar signatures
on top of them.

The ops (``torch.ops.l2norm.*``; every output is a new contiguous tensor, written on the current
CUDA stream for CUDA tensors; strided inputs are read as they are, with no copy):

- ``l2_norm(x, eps=1e-6, scale=1.0, eps_mode='add', out_dtype=None) -> y``
- ``l2_norm_with_rstd(x, eps=1e-6, scale=1.0, eps_mode='add', out_dtype=None) -> (y, rstd)``:
  also each row's f32 reciprocal norm, shape ``x.shape[:-1]`` (not differentiable).
- ``l2_norm_backward(dy, y, rstd, eps, scale, eps_mode, out_dtype=None) -> dx``: the gradient from
  the forward's output (computed with scale 1) and rstd; dx is out_dtype, default dy's dtype.
- ``l2_norm_backward_from_input(dy, x, eps, scale, eps_mode, out_dtype=None) -> dx``: from the
  input alone; dx defaults to x's dtype.
- ``l2_norm_pair(q, k, q_eps=1e-6, k_eps=1e-6, q_scale=1.0, k_scale=1.0, eps_mode='add',
  out_dtype=None) -> (q_y, k_y, q_rstd, k_rstd)``: q and k normalized in one launch, each bitwise
  what ``l2_norm`` gives it (differentiable in q and k; the rstds are not).

Gradients: ``l2_norm_with_rstd`` saves y and rstd (scale 1) or x (another scale); ``l2_norm``
saves x and recomputes the norm in its backward. The backward ops are not differentiable (double
backward raises ``NotImplementedError``).

The wrappers (``l2norm``/``l2_norm`` and ``L2Norm`` as flash-linear-attention's, ``normalize`` as
``F.normalize``'s last dimension) go through the ops where anything may see them (torch.compile and
other tracing, modes, functorch transforms, tensor subclasses, the profiler); in plain eager calls
they call what the dispatcher would, the kernel or the same forward and backward as
``l2_norm_with_rstd``'s autograd formula, without its per-call cost.

CUDA graphs: ``prewarm`` compiles the kernels and makes the per-stream state ahead of a capture.
"""

from __future__ import annotations

from typing import Iterable, Optional, Union

import torch

from . import L2NormError, _clamp_of, _core, _dtype_name

__all__ = ["normalize", "l2norm", "l2_norm", "l2_norm_pair", "L2Norm", "prewarm"]

_LEGACY_DEFAULT_STREAM = 1

_library = torch.library.Library("l2norm", "DEF")
_OPTIONS = "float eps=1e-06, float scale=1.0, str eps_mode='add', ScalarType? out_dtype=None"
_library.define(f"l2_norm(Tensor x, {_OPTIONS}) -> Tensor")
_library.define(f"l2_norm_with_rstd(Tensor x, {_OPTIONS}) -> (Tensor, Tensor)")
_library.define(f"l2_norm_backward(Tensor dy, Tensor y, Tensor rstd, {_OPTIONS}) -> Tensor")
_library.define(f"l2_norm_backward_from_input(Tensor dy, Tensor x, {_OPTIONS}) -> Tensor")
_library.define("l2_norm_pair(Tensor q, Tensor k, float q_eps=1e-06, float k_eps=1e-06, "
                "float q_scale=1.0, float k_scale=1.0, str eps_mode='add', "
                "ScalarType? out_dtype=None) -> (Tensor, Tensor, Tensor, Tensor)")

# With the DLPack C exchange API (PyTorch 2.10 and newer) _core reads a tensor and the current
# stream with no Python calls; without it tensors go through __dlpack__, which needs them detached,
# and the stream is named here.
_EXCHANGE = _core.has_exchange_api(torch.empty(0))
_current_stream = torch._C._cuda_getCurrentRawStream if torch.cuda.is_available() else None
_empty_like = torch.empty_like
_empty = torch.empty
_CONTIGUOUS = torch.contiguous_format
_F32 = torch.float32
_CLAMP = {"add": False, "clamp": True}


def _stream(x: torch.Tensor) -> Optional[int]:
    """The stream argument of _core for `x` without the exchange API (with it, None lets _core ask
    PyTorch for its current stream)."""
    if x.device.type != "cuda":
        return None
    return _current_stream(x.device.index) or _LEGACY_DEFAULT_STREAM


def _clamp(eps_mode: str) -> bool:
    clamp = _CLAMP.get(eps_mode)
    return _clamp_of(eps_mode) if clamp is None else clamp


def _explained(error: L2NormError, x: torch.Tensor) -> L2NormError:
    """The error with what to do about it where a CUDA-graph capture is under way."""
    if x.device.type != "cuda" or not torch.cuda.is_current_stream_capturing():
        return error
    explained = L2NormError(
        f"{error} [l2norm.torch: this call was captured into a CUDA graph before l2norm was ready "
        f"for it; call l2norm.torch.prewarm({x.dtype}, {x.shape[-1]}, device='{x.device}', ...) "
        "with the call's options before the capture (it compiles the kernels and makes the "
        "state of the capture stream, which a capture does not allow)]")
    explained.code = error.code
    return explained


# ---- kernels (CPU and CUDA): the outputs are allocated here, the library writes them ----
# The defaults repeat the schema's: the dispatcher may leave out arguments equal to them.

def _forward(x: torch.Tensor, eps: float = 1e-6, scale: float = 1.0, eps_mode: str = "add",
             out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    clamp = _clamp(eps_mode)
    y = _empty_like(x, dtype=out_dtype, memory_format=_CONTIGUOUS)
    try:
        _core.l2_norm(x if _EXCHANGE else x.detach(), y, None, eps, scale, clamp,
                      None if _EXCHANGE else _stream(x), False)
    except L2NormError as error:
        raise _explained(error, x) from None
    return y


def _forward_with_rstd(x: torch.Tensor, eps: float = 1e-6, scale: float = 1.0,
                       eps_mode: str = "add", out_dtype: Optional[torch.dtype] = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    clamp = _clamp(eps_mode)
    y = _empty_like(x, dtype=out_dtype, memory_format=_CONTIGUOUS)
    rstd = _empty(x.shape[:-1], dtype=_F32, device=x.device)
    try:
        _core.l2_norm(x if _EXCHANGE else x.detach(), y, rstd, eps, scale, clamp,
                      None if _EXCHANGE else _stream(x), False)
    except L2NormError as error:
        raise _explained(error, x) from None
    return y, rstd


def _backward(dy: torch.Tensor, y: torch.Tensor, rstd: torch.Tensor, eps: float = 1e-6,
              scale: float = 1.0, eps_mode: str = "add",
              out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    clamp = _clamp(eps_mode)
    dx = _empty_like(dy, dtype=out_dtype, memory_format=_CONTIGUOUS)
    try:
        if not _EXCHANGE:
            dy, y, rstd = dy.detach(), y.detach(), rstd.detach()
        _core.l2_norm_backward(dy, y, rstd, dx, eps, scale, clamp,
                               None if _EXCHANGE else _stream(dy), False)
    except L2NormError as error:
        raise _explained(error, dy) from None
    return dx


def _backward_from_input(dy: torch.Tensor, x: torch.Tensor, eps: float = 1e-6,
                         scale: float = 1.0, eps_mode: str = "add",
                         out_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    clamp = _clamp(eps_mode)
    dx = _empty_like(dy, dtype=x.dtype if out_dtype is None else out_dtype,
                     memory_format=_CONTIGUOUS)
    try:
        if not _EXCHANGE:
            dy, x = dy.detach(), x.detach()
        _core.l2_norm_backward_from_input(dy, x, dx, eps, scale, clamp,
                                          None if _EXCHANGE else _stream(dy), False)
    except L2NormError as error:
        raise _explained(error, dy) from None
    return dx


def _pair(q: torch.Tensor, k: torch.Tensor, q_eps: float = 1e-6, k_eps: float = 1e-6,
          q_scale: float = 1.0, k_scale: float = 1.0, eps_mode: str = "add",
          out_dtype: Optional[torch.dtype] = None
          ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    clamp = _clamp(eps_mode)
    q_y = _empty_like(q, dtype=out_dtype, memory_format=_CONTIGUOUS)
    k_y = _empty_like(k, dtype=out_dtype, memory_format=_CONTIGUOUS)
    q_rstd = _empty(q.shape[:-1], dtype=_F32, device=q.device)
    k_rstd = _empty(k.shape[:-1], dtype=_F32, device=k.device)
    try:
        _core.l2_norm_pair(q if _EXCHANGE else q.detach(), q_y, q_rstd, q_eps, q_scale, clamp,
                           k if _EXCHANGE else k.detach(), k_y, k_rstd, k_eps, k_scale, clamp,
                           None if _EXCHANGE else _stream(q), False)
    except L2NormError as error:
        raise _explained(error, q) from None
    return q_y, k_y, q_rstd, k_rstd


for _name, _kernel in (("l2_norm", _forward), ("l2_norm_with_rstd", _forward_with_rstd),
                       ("l2_norm_backward", _backward),
                       ("l2_norm_backward_from_input", _backward_from_input),
                       ("l2_norm_pair", _pair)):
    _library.impl(_name, _kernel, "CPU")
    _library.impl(_name, _kernel, "CUDA")


# ---- fake (meta) implementations: shapes and dtypes of the outputs, options checked ----

@torch.library.register_fake("l2norm::l2_norm")
def _forward_fake(x, eps=1e-6, scale=1.0, eps_mode="add", out_dtype=None):
    _clamp_of(eps_mode)
    return x.new_empty(x.shape, dtype=out_dtype or x.dtype)


@torch.library.register_fake("l2norm::l2_norm_with_rstd")
def _forward_with_rstd_fake(x, eps=1e-6, scale=1.0, eps_mode="add", out_dtype=None):
    _clamp_of(eps_mode)
    return x.new_empty(x.shape, dtype=out_dtype or x.dtype), x.new_empty(x.shape[:-1], dtype=_F32)


@torch.library.register_fake("l2norm::l2_norm_backward")
def _backward_fake(dy, y, rstd, eps=1e-6, scale=1.0, eps_mode="add", out_dtype=None):
    _clamp_of(eps_mode)
    return dy.new_empty(dy.shape, dtype=out_dtype or dy.dtype)


@torch.library.register_fake("l2norm::l2_norm_backward_from_input")
def _backward_from_input_fake(dy, x, eps=1e-6, scale=1.0, eps_mode="add", out_dtype=None):
    _clamp_of(eps_mode)
    return dy.new_empty(dy.shape, dtype=out_dtype or x.dtype)


@torch.library.register_fake("l2norm::l2_norm_pair")
def _pair_fake(q, k, q_eps=1e-6, k_eps=1e-6, q_scale=1.0, k_scale=1.0, eps_mode="add",
               out_dtype=None):
    _clamp_of(eps_mode)
    return (q.new_empty(q.shape, dtype=out_dtype or q.dtype),
            k.new_empty(k.shape, dtype=out_dtype or k.dtype),
            q.new_empty(q.shape[:-1], dtype=_F32), k.new_empty(k.shape[:-1], dtype=_F32))


_l2_norm = torch.ops.l2norm.l2_norm.default
_l2_norm_with_rstd = torch.ops.l2norm.l2_norm_with_rstd.default
_l2_norm_backward = torch.ops.l2norm.l2_norm_backward.default
_l2_norm_backward_from_input = torch.ops.l2norm.l2_norm_backward_from_input.default
_l2_norm_pair = torch.ops.l2norm.l2_norm_pair.default


# ---- autograd ----

def _unit_last_stride(dy: torch.Tensor) -> torch.Tensor:
    """dy as the library reads it: any strides but a unit one in the last dimension (autograd hands
    expanded gradients, such as the one of a sum, with stride 0 there)."""
    return dy if dy.shape[-1] <= 1 or dy.stride(-1) == 1 else dy.contiguous()


def _setup_from_input(ctx, inputs, output) -> None:
    x, eps, scale, eps_mode, _ = inputs
    ctx.options = (eps, scale, eps_mode)
    ctx.save_for_backward(x)


def _grad_from_input(ctx, dy):
    (x,) = ctx.saved_tensors
    eps, scale, eps_mode = ctx.options
    dx = _l2_norm_backward_from_input(_unit_last_stride(dy), x, eps, scale, eps_mode, x.dtype)
    return dx, None, None, None, None


def _setup_with_rstd(ctx, inputs, output) -> None:
    x, eps, scale, eps_mode, _ = inputs
    y, rstd = output
    ctx.mark_non_differentiable(rstd)
    ctx.options = (eps, scale, eps_mode)
    ctx.x_dtype = x.dtype
    # The backward from (y, rstd) needs y normalized with scale 1; another scale keeps x instead.
    ctx.from_input = scale != 1.0
    ctx.save_for_backward(*((x,) if ctx.from_input else (y, rstd)))


def _grad_with_rstd(ctx, dy, _drstd):
    eps, scale, eps_mode = ctx.options
    dy = _unit_last_stride(dy)
    if ctx.from_input:
        (x,) = ctx.saved_tensors
        dx = _l2_norm_backward_from_input(dy, x, eps, scale, eps_mode, ctx.x_dtype)
    else:
        y, rstd = ctx.saved_tensors
        dx = _l2_norm_backward(dy, y, rstd, eps, scale, eps_mode, ctx.x_dtype)
    return dx, None, None, None, None


def _setup_pair(ctx, inputs, output) -> None:
    q, k, q_eps, k_eps, q_scale, k_scale, eps_mode, _ = inputs
    q_y, k_y, q_rstd, k_rstd = output
    ctx.mark_non_differentiable(q_rstd, k_rstd)
    ctx.options = (q_eps, k_eps, q_scale, k_scale, eps_mode)
    ctx.dtypes = (q.dtype, k.dtype)
    # As l2_norm_with_rstd: y and rstd where the target's scale is 1, else its input.
    ctx.from_input = (q_scale != 1.0, k_scale != 1.0)
    ctx.save_for_backward(q if ctx.from_input[0] else q_y, q_rstd,
                          k if ctx.from_input[1] else k_y, k_rstd)


def _grad_pair(ctx, dq_y, dk_y, _dq_rstd, _dk_rstd):
    q_eps, k_eps, q_scale, k_scale, eps_mode = ctx.options
    q_saved, q_rstd, k_saved, k_rstd = ctx.saved_tensors
    grads = []
    for dy, saved, rstd, eps, scale, from_input, dtype in (
            (dq_y, q_saved, q_rstd, q_eps, q_scale, ctx.from_input[0], ctx.dtypes[0]),
            (dk_y, k_saved, k_rstd, k_eps, k_scale, ctx.from_input[1], ctx.dtypes[1])):
        if dy is None:
            grads.append(None)
        elif from_input:
            grads.append(_l2_norm_backward_from_input(_unit_last_stride(dy), saved, eps, scale,
                                                      eps_mode, dtype))
        else:
            grads.append(_l2_norm_backward(_unit_last_stride(dy), saved, rstd, eps, scale,
                                           eps_mode, dtype))
    return grads[0], grads[1], None, None, None, None, None, None


def _no_double_backward(ctx, *grads):
    raise NotImplementedError(
        "l2norm: the backward ops (l2norm::l2_norm_backward, l2_norm_backward_from_input) are not "
        "differentiable; double backward through l2norm is not supported")


def _setup_nothing(ctx, inputs, output) -> None:
    pass


torch.library.register_autograd("l2norm::l2_norm", _grad_from_input,
                                setup_context=_setup_from_input)
torch.library.register_autograd("l2norm::l2_norm_with_rstd", _grad_with_rstd,
                                setup_context=_setup_with_rstd)
torch.library.register_autograd("l2norm::l2_norm_pair", _grad_pair, setup_context=_setup_pair)
for _name in ("l2norm::l2_norm_backward", "l2norm::l2_norm_backward_from_input"):
    torch.library.register_autograd(_name, _no_double_backward, setup_context=_setup_nothing)


# ---- the wrappers ----

_Tensor = torch.Tensor
_is_compiling = torch.compiler.is_compiling
_grad_enabled = torch.is_grad_enabled
# What lets something other than the kernel see a call: a torch function or dispatch mode, a
# functorch transform, the profiler. Any of them true, the call goes through the dispatcher. The
# one list serves _eager and _core's eager path alike.
_VETOES = (torch._C._is_torch_function_mode_enabled, torch._C._len_torch_dispatch_stack,
           torch._C._are_functorch_transforms_active, torch.autograd._profiler_enabled)


def _eager(x) -> bool:
    """True for a plain eager call: a plain tensor (no subclass, fake or functorch tensor, no lazily
    negated view), no torch function or dispatch mode, functorch transform or profiler active and
    nothing being compiled or traced. There the wrappers call what the dispatcher would: the
    kernel, or (with grad) the same forward and backward as the ops' autograd formulas."""
    if _is_compiling() or type(x) is not _Tensor or x.is_neg():
        return False
    for veto in _VETOES:
        if veto():
            return False
    return True


class _EagerWithRstd(torch.autograd.Function):
    """l2norm::l2_norm_with_rstd's autograd formula (saves y and rstd, scale 1) for eager calls."""

    @staticmethod
    def forward(ctx, x, eps, eps_mode, out_dtype):
        y, rstd = _forward_with_rstd(x, eps, 1.0, eps_mode, out_dtype)
        ctx.options = (eps, eps_mode, x.dtype)
        ctx.save_for_backward(y, rstd)
        return y

    @staticmethod
    def backward(ctx, dy):
        eps, eps_mode, x_dtype = ctx.options
        y, rstd = ctx.saved_tensors
        # With create_graph the op records its node, whose own backward raises the clear error.
        backward = _l2_norm_backward if _grad_enabled() else _backward
        return backward(_unit_last_stride(dy), y, rstd, eps, 1.0, eps_mode, x_dtype), None, None, None


# The eager path of the wrappers: _core allocates and normalizes a plain eager call itself (the
# checks of _eager, the allocation and the kernel with no Python code between), and returns None
# for any other call, which then goes through the Python below. torch.compile never reaches it:
# is_compiling() is True while dynamo traces.
if _EXCHANGE:
    _core._set_eager_torch(torch.Tensor, torch.empty_like, torch.contiguous_format,
                           torch.is_grad_enabled, list(_VETOES))
_eager_l2_norm = _core._eager_l2_norm


def _normalized(x: torch.Tensor, eps: float, clamp: bool,
                out_dtype: Optional[torch.dtype]) -> torch.Tensor:
    if _EXCHANGE and not _is_compiling():
        try:
            y = _eager_l2_norm(x, eps, clamp, out_dtype)
        except L2NormError as error:
            raise _explained(error, x) from None
        if y is not None:
            return y
    eps_mode = "clamp" if clamp else "add"
    grad = x.requires_grad and _grad_enabled()
    if _eager(x):
        if grad:
            return _EagerWithRstd.apply(x, eps, eps_mode, out_dtype)
        return _forward(x, eps, 1.0, eps_mode, out_dtype)
    if grad:
        return _l2_norm_with_rstd(x, eps, 1.0, eps_mode, out_dtype)[0]
    return _l2_norm(x, eps, 1.0, eps_mode, out_dtype)


def normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12,
              eps_mode: str = "clamp") -> torch.Tensor:
    """``torch.nn.functional.normalize(x, p=2, dim=-1, eps=eps)``, forward and gradient:
    ``x / max(norm, eps)`` over the last dimension (only the last one; another `dim` raises
    ``ValueError``). `eps_mode="add"` gives ``x / sqrt(sum(x**2) + eps)`` instead."""
    if dim != -1 and dim != x.dim() - 1:
        raise ValueError(f"l2norm.torch.normalize: dim={dim}; only the last dimension is supported")
    return _normalized(x, eps, _clamp(eps_mode), None)


def l2norm(x: torch.Tensor, eps: float = 1e-6,
           output_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """flash-linear-attention's ``l2norm``, forward and gradient: ``x * rsqrt(sum(x**2) + eps)``
    over the last dimension in f32, returned as `output_dtype` (default x's dtype). With grad the
    forward saves y and its f32 rstd, and the backward computes ``rstd * (dy - (dy . y) y)`` into
    x's dtype."""
    return _normalized(x, eps, False, output_dtype)


l2_norm = l2norm


class L2Norm(torch.nn.Module):
    """flash-linear-attention's ``L2Norm(eps=1e-6, output_dtype=None)`` module."""

    def __init__(self, eps: float = 1e-6, output_dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps = eps
        self.output_dtype = output_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2norm(x, self.eps, self.output_dtype)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, output_dtype={self.output_dtype}"


# ---- CUDA graphs ----

def _capture_streams(device: torch.device) -> list:
    """The streams a capture on `device` runs on by default: the current stream and the one
    ``torch.cuda.graph`` captures on unless given another (made here as torch.cuda.graph makes it,
    on the current device, when it does not exist yet)."""
    streams = [torch.cuda.current_stream(device)]
    graph = torch.cuda.graph
    if graph.default_capture_stream is None and torch.cuda.current_device() == device.index:
        graph.default_capture_stream = torch.cuda.Stream()
    capture = graph.default_capture_stream
    if capture is not None and capture.device == device:
        streams.append(capture)
    return streams


def prewarm(dtype: torch.dtype, dim: int, *, device: Union[torch.device, str, int, None] = None,
            eps: float = 1e-6, scale: float = 1.0, eps_mode: str = "add",
            output_dtype: Optional[torch.dtype] = None, backward: bool = True,
            streams: Optional[Iterable[torch.cuda.Stream]] = None) -> None:
    """Readies l2norm for capturing its calls into a CUDA graph on `device` (default: the current
    CUDA device; a no-op for the CPU), for rows of `dim` elements of `dtype` written as
    `output_dtype` (default `dtype`) with these options:

    - compiles every kernel the forward (with and without rstd) may pick and, with `backward`,
      every kernel of both backward ops (dy and y of output_dtype, dx of dtype), so that no
      compilation happens during the capture;
    - makes the state l2norm keeps per CUDA stream (an encoder, whose workspaces are allocated and
      zeroed when it is made, which a capture does not allow) for each stream of `streams`;
      default: the device's current stream and the stream ``torch.cuda.graph`` captures on by
      default. Pass the stream given to ``torch.cuda.graph(..., stream=s)`` if it is another.
      Every thread (autograd's included) then uses that state.

    Call it once per (dtype, dim, options) before the capture; calls made in eager mode on a
    stream make its state too, so code whose warm-up runs on the capture stream (torch.compile's
    CUDA graphs) needs it only for the compilation. A call captured without it raises
    ``L2NormError`` (code 'unsupported') saying so, and leaves the capture intact.
    """
    clamp = _clamp_of(eps_mode)
    if device is None:
        device = torch.device("cuda", torch.cuda.current_device())
    device = torch.device(device) if not isinstance(device, int) else torch.device("cuda", device)
    if device.type == "cpu":
        return
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    name = f"cuda:{device.index}"
    in_name = _dtype_name(dtype)
    out_name = in_name if output_dtype is None else _dtype_name(output_dtype)
    _core.prewarm(name, in_name, dim, eps, scale, clamp, None if out_name == in_name else out_name)
    if backward:
        _core.prewarm_backward(name, out_name, out_name, in_name, dim, eps, scale, clamp, False)
        _core.prewarm_backward(name, out_name, in_name, in_name, dim, eps, scale, clamp, True)
    for stream in (_capture_streams(device) if streams is None else streams):
        _core.make_encoder(name, stream.cuda_stream or _LEGACY_DEFAULT_STREAM)


def l2_norm_pair(q: torch.Tensor, k: torch.Tensor, eps: float = 1e-6, q_scale: float = 1.0,
                 k_scale: float = 1.0, eps_mode: str = "add",
                 output_dtype: Optional[torch.dtype] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """q and k of a Gated DeltaNet layer normalized in one launch (flash-linear-attention's
    ``l2norm`` of each, ``eps_mode="add"``), q scaled by `q_scale` and k by `k_scale` (e.g.
    ``q_scale=head_dim ** -0.5``): ``(l2norm(q) * q_scale, l2norm(k) * k_scale)``, each bitwise
    what ``l2_norm`` gives it, with gradients for both. q and k may be strided slices of one
    projection and differ in shape and dtype."""
    q_y, k_y, _, _ = _l2_norm_pair(q, k, eps, eps, q_scale, k_scale, eps_mode, output_dtype)
    return q_y, k_y
