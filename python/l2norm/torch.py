"""PyTorch front end: the op ``torch.ops.l2norm.l2_norm`` (CPU and CUDA tensors, with a fake
implementation for ``torch.compile`` and FakeTensor tracing) and the familiar signatures on top.

``torch.ops.l2norm.l2_norm(x, eps=1e-6, scale=1.0, eps_mode='add') -> Tensor`` normalizes the last
dimension into a new contiguous tensor, on the current CUDA stream for CUDA tensors. Strided
inputs are read as they are (no copy). Gradients come with the library's backward op; until then
backpropagating through it raises ``NotImplementedError``.
"""

from __future__ import annotations

from typing import Optional

import torch

from . import _clamp_of, _core

__all__ = ["normalize", "l2norm", "l2_norm", "L2Norm"]

_LEGACY_DEFAULT_STREAM = 1

_library = torch.library.Library("l2norm", "DEF")
_library.define("l2_norm(Tensor x, float eps=1e-06, float scale=1.0, str eps_mode='add') -> Tensor")

_current_stream = torch._C._cuda_getCurrentRawStream if torch.cuda.is_available() else None


# The defaults repeat the schema's: the dispatcher may leave out arguments equal to them.
def _l2_norm_kernel(x: torch.Tensor, eps: float = 1e-6, scale: float = 1.0,
                    eps_mode: str = "add") -> torch.Tensor:
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    stream = 0
    if x.device.type == "cuda":
        stream = _current_stream(x.device.index) or _LEGACY_DEFAULT_STREAM
    _core.l2_norm(x, out, None, eps, scale, _clamp_of(eps_mode), stream or None, False)
    return out


_library.impl("l2_norm", _l2_norm_kernel, "CPU")
_library.impl("l2_norm", _l2_norm_kernel, "CUDA")


@torch.library.register_fake("l2norm::l2_norm")
def _l2_norm_fake(x: torch.Tensor, eps: float = 1e-6, scale: float = 1.0,
                  eps_mode: str = "add") -> torch.Tensor:
    _clamp_of(eps_mode)
    return x.new_empty(x.shape)


def _l2_norm_setup_context(ctx, inputs, output) -> None:
    pass


def _l2_norm_backward(ctx, grad_output):
    raise NotImplementedError(
        "l2norm: the gradient of l2norm::l2_norm needs the library's l2_norm_backward op, which "
        "lands with the training ops; use torch.nn.functional.normalize where gradients are needed")


torch.library.register_autograd("l2norm::l2_norm", _l2_norm_backward,
                                setup_context=_l2_norm_setup_context)

_op = torch.ops.l2norm.l2_norm.default


def normalize(x: torch.Tensor, dim: int = -1, eps: float = 1e-12,
              eps_mode: str = "clamp") -> torch.Tensor:
    """``torch.nn.functional.normalize(x, p=2, dim=-1, eps=eps)`` (forward): ``x / max(norm, eps)``.
    Only the last dimension; `eps_mode="add"` gives ``x / sqrt(sum(x**2) + eps)`` instead."""
    if dim != -1 and dim != x.dim() - 1:
        raise ValueError(f"l2norm.torch.normalize: dim={dim}; only the last dimension is supported")
    return _op(x, eps, 1.0, eps_mode)


def l2norm(x: torch.Tensor, eps: float = 1e-6,
           output_dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """flash-linear-attention's ``l2norm``: ``x / sqrt(sum(x**2) + eps)`` over the last dimension.
    `output_dtype` other than x's dtype lands with the training ops (``NotImplementedError``)."""
    if output_dtype is not None and output_dtype != x.dtype:
        raise NotImplementedError(
            f"l2norm.torch.l2norm(output_dtype={output_dtype}) on {x.dtype} input: an output dtype "
            "other than the input's lands with the training ops")
    return _op(x, eps, 1.0, "add")


l2_norm = l2norm


class L2Norm(torch.nn.Module):
    """flash-linear-attention's ``L2Norm(eps=1e-6, output_dtype=None)`` module (forward)."""

    def __init__(self, eps: float = 1e-6, output_dtype: Optional[torch.dtype] = None) -> None:
        super().__init__()
        self.eps = eps
        self.output_dtype = output_dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return l2norm(x, self.eps, self.output_dtype)

    def extra_repr(self) -> str:
        return f"eps={self.eps}, output_dtype={self.output_dtype}"
