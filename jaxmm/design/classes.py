"""The Z-Z part of the Schur update by classes of term-1 levels (scalar term 1 only).

With one column per level of term 1, ``C_j = theta1^2 / (theta1^2 d_j + 1)`` depends on
level j only through ``d_j = D1[j]`` (its count, or sum of squared values). Grouping the
levels into classes of equal ``d_j``, the sparse update ``sum_j C_j k_j k_j'`` of the rest
block's Z rows becomes ``sum_k c_k M_k`` with ``M_k = sum_{j in class k} k_j k_j'``: dense
rz x rz matrices computed once here (BLAS rank-k updates of dense chunks of K) and stored
as packed lower triangles. Each evaluation then costs one tensordot of the classes' c_k
with the stacked M_k, whatever the number of element pairs (``sum_j nnz_j^2 / 2``), which
is what makes randomly crossed factors with many rows per level fit.

Example:
    >>> import numpy as np
    >>> el_row, el_j = np.array([0, 1, 0, 1]), np.array([0, 0, 1, 2])
    >>> el_B, D1 = np.ones((4, 1)), np.array([2.0, 1.0, 1.0]).reshape(3, 1, 1)
    >>> rep, cls_of = level_classes(D1, el_j)
    >>> rep.tolist(), cls_of.tolist()
    ([1, 0], [1, 0, 0])
    >>> class_products(el_row, el_j, el_B, cls_of, 2, 2).tolist()   # rows (0,0), (1,0), (1,1)
    [[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from .. import aligned

__all__ = ["class_cross", "class_products", "level_classes", "packed_size"]

#: Levels of term 1 per dense chunk of K (rz x chunk float64) in the host products.
CHUNK = 2048


def packed_size(rz: int) -> int:
    """Entries of a packed lower triangle of an rz x rz matrix."""
    return rz * (rz + 1) // 2


def level_classes(D1: np.ndarray, el_j: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classes of the term-1 levels that have non-zeros (equal ``D1[j, 0, 0]``): one
    representative level per class (its ``C_j`` is the class's), and each level's class
    (-1 for levels without non-zeros)."""
    d = np.asarray(D1)[:, 0, 0]
    levels = np.flatnonzero(np.bincount(el_j, minlength=d.shape[0]))
    _, first, inv = np.unique(d[levels], return_index=True, return_inverse=True)
    cls_of = np.full(d.shape[0], -1, np.int64)
    cls_of[levels] = inv.reshape(-1)
    return levels[first].astype(np.int32), cls_of


def class_cross(el_row: np.ndarray, el_j: np.ndarray, el_B: np.ndarray, cls_of: np.ndarray,
                C1: np.ndarray, n_cls: int, rz: int) -> np.ndarray:
    """``N_k = sum_{j in class k} k_j C1_j'``, shape (n_cls, rz, p+1): the classes' share of
    the Z rows' cross with [X y] (exact with ``C_j`` equal within a class)."""
    tgt = cls_of[el_j] * rz + el_row
    out = np.empty((n_cls * rz, C1.shape[-1]))
    for c in range(C1.shape[-1]):
        out[:, c] = np.bincount(tgt, el_B[:, 0] * C1[el_j, 0, c], minlength=n_cls * rz)
    return out.reshape(n_cls, rz, C1.shape[-1])


def class_products(el_row: np.ndarray, el_j: np.ndarray, el_B: np.ndarray,
                   cls_of: np.ndarray, n_cls: int, rz: int) -> np.ndarray:
    """Packed lower triangles (row-major: entry (a, b), b <= a, at a(a+1)/2 + b) of
    ``M_k = sum_{j in class k} k_j k_j'``, shape (n_cls, rz(rz+1)/2), where k_j is level
    j's column of Z_rest'Z1 (elements: rest row, term-1 level, value; (row, level) unique)
    and ``cls_of`` each level's class.
    """
    out = aligned.zeros((n_cls, packed_size(rz)))  # no copy into the compiled programs
    if el_row.size == 0:
        return out
    rows_used = int(el_row.max()) + 1  # padded Z rows are zero: leave them out of the GEMMs
    tri = np.tril_indices(rows_used)
    tri_flat = tri[0] * (tri[0] + 1) // 2 + tri[1]
    # levels grouped by class, cut into chunks of CHUNK columns: (chunk, column) per level
    lv = np.flatnonzero(cls_of >= 0)
    lv = lv[np.argsort(cls_of[lv], kind="stable")]
    cl = cls_of[lv]
    pos = np.arange(lv.size)
    local = pos - np.maximum.accumulate(np.where(np.r_[True, cl[1:] != cl[:-1]], pos, 0))
    new_chunk = np.r_[True, (cl[1:] != cl[:-1]) | (local[1:] % CHUNK == 0)]
    chunk_l = np.cumsum(new_chunk) - 1
    chunk_cls = cl[new_chunk]
    chunk_of, col_of = np.zeros(cls_of.size, np.int64), np.zeros(cls_of.size, np.int64)
    chunk_of[lv], col_of[lv] = chunk_l, local % CHUNK
    el_chunk = chunk_of[el_j]
    small = np.int16 if chunk_cls.size < 2**15 else np.int32  # int16: a radix sort
    order = np.argsort(el_chunk.astype(small), kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(el_chunk, minlength=chunk_cls.size))]
    from scipy.linalg.blas import dsyrk  # here: scipy.linalg costs ~70 ms of a cold start

    dense = np.zeros((rows_used, CHUNK), order="F")
    M = np.zeros((rows_used, rows_used), order="F")
    for c in range(chunk_cls.size):
        sel = order[bounds[c] : bounds[c + 1]]
        col = col_of[el_j[sel]]
        width = int(col.max()) + 1
        dense[:, :width] = 0.0
        dense[el_row[sel], col] = el_B[sel, 0]
        M = dsyrk(1.0, dense[:, :width], beta=1.0, c=M, lower=1, overwrite_c=1)
        if c + 1 == chunk_cls.size or chunk_cls[c + 1] != chunk_cls[c]:
            out[chunk_cls[c], tri_flat] = M[tri]
            M[:] = 0.0
    return out
