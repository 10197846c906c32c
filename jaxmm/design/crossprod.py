"""Crossproducts of [Z X y] in the blocked layout, built once on the host in NumPy.

Everything here is O(nnz): bincounts over observations and counts of (level, level) keys;
nothing of size n x q, and the only dense matrix is the rest block (Z columns of the terms
after the first, then X, then y), whose size the caller checks before building. The
sparse Schur update's arrays (element pairs or classes) are in :mod:`jaxmm.design.schur`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from .. import aligned
from ..core.layout import Blocks, Layout
from ..errors import ModelError

#: Largest dense rest block (rows) built: 8 bytes * r^2 must fit in memory.
MAX_DENSE = 20_000
class TermLike(Protocol):
    index: np.ndarray  # (n,) int level of each observation
    Xt: np.ndarray  # (n, q) the term's model matrix
    nlevels: int


def bucket(m: int, fine: int = 8) -> int:
    """Round m up on a grid of ~1/fine relative spacing (minimum 8), so that models of
    similar size share compiled code; 0 stays 0."""
    if m == 0:
        return 0
    if m <= 8:
        return 8
    step = max(1, (1 << (int(m).bit_length() - 1)) // fine)
    return -(-m // step) * step


def bucket_dense(m: int) -> int:
    """Padding of a dimension of the dense rest block: 1/4 steps for small sizes (shared
    compiled code across similar small models), ~3 % steps from 512 rows up, where the
    cubic cost of the dense factorization makes padding expensive (InstEval's 1,128 levels:
    1,152 instead of 1,280, a third less work per Cholesky)."""
    return bucket(m, 4) if m < 512 else bucket(m, 32)


def _bincount_products(idx: np.ndarray, L: np.ndarray, R: np.ndarray, size: int) -> np.ndarray:
    """out[g, a, b] = sum over rows i with idx[i] == g of L[i, a] * R[i, b] (over all
    devices for big data, see :mod:`jaxmm.sharding`)."""
    from ..sharding import sharded_products, use_sharded_products

    if use_sharded_products(idx.shape[0]):
        return sharded_products(idx, L, R, size)
    out = np.empty((size, L.shape[1], R.shape[1]))
    for a in range(L.shape[1]):
        for b in range(R.shape[1]):
            out[:, a, b] = np.bincount(idx, L[:, a] * R[:, b], minlength=size)
    return out


def _pair_keys(i1: np.ndarray, i2: np.ndarray, n2: int):
    """Unique (i1, i2) combinations (sorted by i1 then i2) and each row's combination."""
    from .random import compact_codes

    key = i1.astype(np.int64) * n2 + i2
    uniq, inv = compact_codes(key, int(i1.max(initial=0) + 1) * n2)
    return uniq // n2, uniq % n2, inv


def _pad(a: np.ndarray, n: int, value=0) -> np.ndarray:
    """``a`` with rows of ``value`` appended up to n rows; large results 64-byte aligned
    (:mod:`jaxmm.aligned`: passed to the compiled programs without a copy)."""
    if a.shape[0] == n and (a.nbytes < aligned.MIN_BYTES or a.ctypes.data % aligned.ALIGN == 0):
        return a
    out = aligned.empty((n,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    out[a.shape[0] :] = value
    return out


def rest_size(terms: Sequence[TermLike], p: int) -> int:
    """Size of the dense rest block for these (sorted) terms: sum of q*levels after term 1."""
    return sum(t.nlevels * t.Xt.shape[1] for t in terms[1:]) + p + 1


def check_dense_size(terms: Sequence[TermLike], p: int, max_dense: int = MAX_DENSE) -> None:
    """Raise ``ModelError`` (before anything is allocated) if the dense rest block of these
    sorted terms would have more than ``max_dense`` rows; the message states its size.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> import numpy as np
        >>> big = [NS(group=g, nlevels=30_000, Xt=np.ones((1, 1))) for g in "ab"]
        >>> check_dense_size(big, 2)
        Traceback (most recent call last):
        ...
        jaxmm.errors.ModelError: the random-effects terms after the first (a: 30000 levels x 1, b: 30000 levels x 1) need a dense block of 30003 x 30003 (6.7 GiB) after eliminating the largest term; jaxmm refuses blocks over 20000 rows. Nest the smaller factor, drop a term, or fit the crossed factors with fewer levels.
    """
    r = rest_size(terms, p)
    if r > max_dense:
        sizes = ", ".join(f"{t.group}: {t.nlevels} levels x {t.Xt.shape[1]}" for t in terms)
        raise ModelError(
            f"the random-effects terms after the first ({sizes}) need a dense block of "
            f"{r} x {r} ({8 * r * r / 2**30:.1f} GiB) after eliminating the largest term; "
            f"jaxmm refuses blocks over {max_dense} rows. Nest the smaller factor, drop a "
            "term, or fit the crossed factors with fewer levels."
        )


def crossproducts(
    y: np.ndarray, X: np.ndarray, terms: Sequence[TermLike], *, pad: bool = True,
    mode: str = "auto",
) -> tuple[Layout, Blocks]:
    """Build the static layout and the (NumPy) crossproduct blocks for sorted terms.

    ``mode`` picks the form of the Schur update's Z-Z part
    (:func:`~jaxmm.design.schur.schur_arrays`).

    The blocks are sums over rows: :class:`~jaxmm.design.accumulate.CrossAccumulator`
    builds the same blocks from chunks of rows (streamed data).

    Example:
        >>> import numpy as np
        >>> from types import SimpleNamespace as NS
        >>> g = np.repeat(np.arange(3), 2)
        >>> t = NS(index=g, Xt=np.ones((6, 1)), nlevels=3)
        >>> layout, blocks = crossproducts(np.arange(6.0), np.ones((6, 1)), [t], pad=False)
        >>> layout.l1, layout.r, blocks.D1[:, 0, 0].tolist()
        (3, 2, [2.0, 2.0, 2.0])
    """
    from .accumulate import CrossAccumulator

    check_dense_size(terms, X.shape[1])
    acc = CrossAccumulator([t.nlevels for t in terms], [t.Xt.shape[1] for t in terms],
                           X.shape[1], pad=pad, mode=mode)
    acc.add(y, X, [t.index for t in terms], [t.Xt for t in terms])
    return acc.finish()


def add_rest_block(A: np.ndarray, XY: np.ndarray, rest, rest_layout, rz: int) -> None:
    """Add these rows' [Z_rest X y]'[Z_rest X y] to the dense block ``A`` (padding rows
    between Z and X stay zero)."""
    A[rz:, rz:] += XY.T @ XY
    p1 = XY.shape[1]
    for k, (t, lk) in enumerate(zip(rest, rest_layout)):
        qk, ok, nk = lk.q, lk.offset, t.nlevels
        idx = np.asarray(t.index)
        # Z_k' [X y]
        zxy = _bincount_products(idx, t.Xt, XY, nk).reshape(nk * qk, p1)
        A[ok : ok + nk * qk, rz:] += zxy
        A[rz:, ok : ok + nk * qk] += zxy.T
        # Z_k' Z_k: block diagonal
        dk = _bincount_products(idx, t.Xt, t.Xt, nk)
        rows = ok + np.arange(nk)[:, None, None] * qk + np.arange(qk)[None, :, None]
        cols = ok + np.arange(nk)[:, None, None] * qk + np.arange(qk)[None, None, :]
        A[rows, cols] += dk
        # Z_k' Z_m for later terms m (keys are unique, so += adds each once)
        for t2, lm in zip(rest[k + 1 :], rest_layout[k + 1 :]):
            qm, om = lm.q, lm.offset
            l_k, l_m, inv = _pair_keys(idx, np.asarray(t2.index), t2.nlevels)
            val = _bincount_products(inv, t.Xt, t2.Xt, len(l_k))
            rows = ok + l_k[:, None, None] * qk + np.arange(qk)[None, :, None]
            cols = om + l_m[:, None, None] * qm + np.arange(qm)[None, None, :]
            rows, cols = np.broadcast_arrays(rows, cols)
            A[rows, cols] += val
            A[cols, rows] += val
