"""Dask front end: ``normalize(array, **options)`` maps ``l2norm.normalize`` over the blocks of a
``dask.array`` whose rows are chunked and whose last dimension is whole (rechunked if it is not),
and returns the lazy result."""

from __future__ import annotations

from typing import Any

from . import _clamp_of, _dtype_name
from . import normalize as _normalize

__all__ = ["normalize"]

_BLOCK_OPTIONS = {"eps", "scale", "eps_mode", "out_dtype"}


def _normalize_block(block: Any, **options: Any) -> Any:
    return _normalize(block, **options)


def normalize(array: Any, **options: Any) -> Any:
    """Lazily normalizes each row of the dask array `array` (options as ``l2norm.normalize``:
    `eps`, `scale`, `eps_mode`, `out_dtype`). A last dimension split over several chunks is
    rechunked whole first, since every row must sit in one block."""
    unknown = set(options) - _BLOCK_OPTIONS
    if unknown:
        raise ValueError(f"l2norm.dask.normalize: unsupported options {sorted(unknown)}; "
                         f"accepted: {sorted(_BLOCK_OPTIONS)}")
    _clamp_of(options.get("eps_mode", "add"))
    if array.ndim == 0:
        raise ValueError("l2norm.dask.normalize: a 0-d array has no rows")
    if len(array.chunks[-1]) > 1:
        array = array.rechunk({array.ndim - 1: -1})
    dtype = array.dtype
    if options.get("out_dtype") is not None:
        from . import _arrays_for
        import numpy as np

        dtype = _arrays_for(np.ndarray).dtype(_dtype_name(options["out_dtype"]))
    return array.map_blocks(_normalize_block, dtype=dtype, **options)
