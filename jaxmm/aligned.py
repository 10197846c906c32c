"""Host arrays that JAX's CPU backend takes without copying.

A NumPy array passed to a jitted function (or ``jax.device_put``) on the CPU is used in
place when its data are 64-byte aligned, and copied otherwise; NumPy's allocations are
16-byte aligned. The large constant blocks of a model (InstEval: 35 MB of element pairs,
two 11 MB dense blocks) are therefore allocated aligned: each fit's transfer of them then
costs nothing instead of ~10 ms. They must not be written to once handed to JAX (the
blocks never are).

Example:
    >>> a = zeros((1000, 100))
    >>> a.ctypes.data % ALIGN, a.shape, float(a.sum())
    (0, (1000, 100), 0.0)
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["ALIGN", "copy", "empty", "full", "zeros"]

#: Alignment (bytes) at which XLA's CPU client aliases host memory.
ALIGN = 64
#: Arrays smaller than this (bytes) are allocated as NumPy does: their copy is cheap.
MIN_BYTES = 1 << 16


def _buffer(shape, dtype, fill: bool) -> np.ndarray:
    dtype = np.dtype(dtype)
    nbytes = (shape if isinstance(shape, int) else math.prod(shape)) * dtype.itemsize
    if nbytes < MIN_BYTES:
        return np.zeros(shape, dtype) if fill else np.empty(shape, dtype)
    raw = (np.zeros if fill else np.empty)(nbytes + ALIGN, np.uint8)
    start = -raw.ctypes.data % ALIGN
    return raw[start : start + nbytes].view(dtype).reshape(shape)


def empty(shape, dtype=np.float64) -> np.ndarray:
    """``np.empty``, 64-byte aligned when large."""
    return _buffer(shape, dtype, False)


def zeros(shape, dtype=np.float64) -> np.ndarray:
    """``np.zeros``, 64-byte aligned when large."""
    return _buffer(shape, dtype, True)


def full(shape, value, dtype=np.float64) -> np.ndarray:
    """``np.full``, 64-byte aligned when large."""
    out = _buffer(shape, dtype, False)
    out.fill(value)
    return out


def copy(a: np.ndarray, dtype=None) -> np.ndarray:
    """A C-contiguous copy of ``a`` (as ``dtype``), 64-byte aligned when large."""
    a = np.asarray(a)
    dtype = a.dtype if dtype is None else np.dtype(dtype)
    if a.size * dtype.itemsize < MIN_BYTES:
        return np.array(a, dtype)
    out = _buffer(a.shape, dtype, False)
    out[...] = a
    return out
