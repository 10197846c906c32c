"""The constant arrays of the sparse Schur update (host, NumPy): the non-zeros of Z_rest'Z1
as elements, and the Z-Z part of the update as element pairs or classes of term-1 levels.

Eliminating term 1 subtracts ``sum_j K_j C_j K_j'`` from the dense rest block, where K_j
holds the non-zeros of Z_rest'Z1 in term-1 level j's columns. The pair form lists, for
every level j, each pair (a, b) of its elements with block(b) <= block(a) (the lower
triangle, with both orders inside one q x q block, which Lambda mixes as a whole), and
targets them in the transposed block (row(b), row(a)), sorted, so that the update is one
scatter over sorted indices.

Example:
    >>> import numpy as np
    >>> el_row, el_j = np.array([0, 1, 1]), np.array([0, 0, 1])   # rows 0, 1 meet level 0
    >>> j, v, t = pairs(el_row, el_j, np.ones((3, 1)), el_row, r=3, rz=2, pad=False)
    >>> j.tolist(), (t // 3).tolist(), (t % 3).tolist()              # target row, column
    ([0, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 1])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import aligned
from ..core.layout import Layout
from ..errors import ModelError
from .crossprod import _pad, bucket

__all__ = ["element_arrays", "pair_count", "pairs", "schur_arrays"]

#: Largest number of (element, element) pairs of the sparse Schur update (~20 bytes each
#: for scalar terms, q1^2 * 8 + 12 in general; each is also touched once per evaluation).
MAX_PAIRS = 150_000_000
#: Pairs above which the class update (scalar term 1, see :mod:`jaxmm.design.classes`) is
#: taken when its packed matrices are smaller; below it pairs are cheap either way.
CLASS_MIN_PAIRS = 5_000_000
#: Largest stack of class matrices (bytes, packed lower triangles of the Z rows).
MAX_CLASS_BYTES = 3 * 2**30
#: Largest host cost of the class matrices (rest rows^2 * term-1 levels multiply-adds).
MAX_CLASS_FLOPS = 1e12
#: Pairs from which they are grouped by target row with scipy's sparse transpose (a
#: counting sort, ~3x faster than NumPy's radix argsort on InstEval's 1.8 M pairs).
SPARSE_GROUPING_PAIRS = 8192


def element_arrays(layout: Layout, keys: Sequence[np.ndarray], vals: Sequence[np.ndarray],
                   nlevels: Sequence[int]):
    """Non-zeros of Z_k' Z_1 as elements (row in the rest block, term-1 level, q1 values,
    block start) from each rest term's sorted (level-1 * nlevels_k + level_k) keys and
    their (E, q1, qk) sums: each term's elements in (term-1 level, row) order, the terms
    one after another (rows ascending)."""
    rows_l, js_l, B_l, blk_l = [], [], [], []
    for lk, key, val, nk in zip(layout.rest, keys, vals, nlevels):
        qk, j, lvl = lk.q, key // nk, key % nk
        # element (e, c) is row offset + lvl*qk + c of the rest block, B = val[e, :, c]
        rows_l.append((lk.offset + lvl[:, None] * qk + np.arange(qk)[None, :]).ravel())
        blk_l.append(np.repeat(lk.offset + lvl * qk, qk))
        js_l.append(np.repeat(j, qk))
        B_l.append(val.transpose(0, 2, 1).reshape(-1, layout.q1))
    if not rows_l:
        z = np.zeros(0, np.int32)
        return z, z, np.zeros((0, layout.q1)), z
    return (np.concatenate(rows_l).astype(np.int32), np.concatenate(js_l).astype(np.int32),
            np.concatenate(B_l), np.concatenate(blk_l))


def _stable_argsort(key: np.ndarray, size: int) -> np.ndarray:
    """Stable argsort of ints in [0, size): NumPy's linear-time radix sort when they fit
    16 bits."""
    if size <= 1 << 16:
        return np.argsort(key.astype(np.uint16), kind="stable")
    return np.argsort(key, kind="stable")


def _take(a: np.ndarray, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a[idx]`` along axis 0 for indices known to be in range (no bounds check; int32
    indices are not converted, 2-3x faster than fancy indexing)."""
    return np.take(a, idx, axis=0, out=out, mode="clip")


def _level_order(el_row: np.ndarray, el_j: np.ndarray) -> np.ndarray:
    """Order of the elements by (term-1 level, row): a stable sort by level, as
    :func:`element_arrays` gives rows ascending within each level (checked; else a lexsort).
    Blocks are runs of consecutive rows, so this is also (level, block, row) order."""
    order = _stable_argsort(el_j, int(el_j.max()) + 1)
    js, rows = el_j[order], el_row[order]
    if not ((js[1:] != js[:-1]) | (rows[1:] > rows[:-1])).all():
        order = np.lexsort((el_row, el_j))
    return order


def _runs(keys: np.ndarray, new: np.ndarray | None = None) -> np.ndarray:
    """Boolean (n,): where a run of equal sorted ``keys`` starts (or where ``new`` does)."""
    out = np.empty(keys.shape[0], bool)
    out[:1] = True
    np.not_equal(keys[1:], keys[:-1], out=out[1:])
    if new is not None:
        out |= new
    return out


def _spans(starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each position, the first position of its run and the end of its run."""
    n = starts.shape[0]
    first = np.flatnonzero(starts)
    length = np.diff(np.append(first, n))
    return np.repeat(first, length), np.repeat(first + length, length)


def _group_by_target_row(a_counts: np.ndarray, b_of: np.ndarray, b_row: np.ndarray,
                         r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stable counting sort by row(b) of pairs listed by a (``a_counts`` pairs for each a in
    turn, ``b_of``: what each pair carries of b): b_of and the a ranks in the sorted order,
    and the number of pairs per target row."""
    na, total = a_counts.shape[0], b_of.shape[0]
    if total >= SPARSE_GROUPING_PAIRS:
        import scipy.sparse as sp  # a CSR -> CSC transpose is a stable counting sort by column

        indptr = np.zeros(na + 1, np.int32 if total < 2**31 else np.int64)
        np.cumsum(a_counts, out=indptr[1:])
        H = sp.csr_matrix((b_of, b_row, indptr), shape=(na, r)).tocsc()
        return H.data, H.indices, np.diff(H.indptr)
    by = _stable_argsort(b_row, r)
    a_rank = np.repeat(np.arange(na, dtype=np.int32), a_counts)
    return b_of[by], a_rank[by], np.bincount(b_row, minlength=r)


def pairs(el_row, el_j, el_B, el_blk, r, rz, pad):
    """Pairs (a, b) of elements sharing a term-1 level with block(b) <= block(a), as
    ``(pair_j, pair_v, pair_t)``: the level (int32), outer(B_a, B_b) and the flat target
    row(b) * r + row(a) in the transposed rest block (int32; see :mod:`jaxmm.core.blocked`),
    sorted by (row(b), row(a), level); padded to a bucket with zero values at target r * r
    (past the end: dropped) when ``pad``.

    O(nnz + pairs), with no sort of the pairs: with the elements in (level, row) order, the
    partners b of element a are the positions from the start of a's level to the end of
    its block. Taking a in (row, level) order lists the pairs by (row(a), level, row(b));
    a stable counting sort by row(b) then gives the target order.
    """
    q1 = el_B.shape[1]
    n = el_row.shape[0]
    if n == 0:
        z = np.zeros(0, np.int32)
        return z, np.zeros((0, q1, q1)), z
    if r * r >= 2**31:
        raise ModelError(f"the dense rest block ({r} rows) is too large for int32 targets")
    order = _level_order(el_row, el_j)
    rows = el_row[order]
    new_j = _runs(el_j[order])
    lo = _spans(new_j)[0]                          # first partner: its level's start
    hi = _spans(_runs(el_blk[order], new_j))[1]    # partners end with its block
    by_row = _stable_argsort(rows, r)            # (level, row) positions in (row, level) order
    lo, count = lo[by_row], hi[by_row] - lo[by_row]
    ends = np.cumsum(count)
    total = int(ends[-1])
    if total > MAX_PAIRS:
        raise ModelError(_pairs_message(total, q1, n, int(new_j.sum())))
    b_pos = np.repeat((lo - ends + count).astype(np.int32), count)  # partner positions
    b_pos += np.arange(total, dtype=np.int32)
    # what the grouping carries of b: its value when scalar (saves a gather), else its rank
    # in (row, level) order
    if q1 == 1:
        b_of = el_B[order, 0]
    else:
        b_of = np.empty(n, np.int32)
        b_of[by_row] = np.arange(n, dtype=np.int32)
    b_val, ia, per_row = _group_by_target_row(count, _take(b_of, b_pos), _take(rows, b_pos), r)
    src = order[by_row]  # the elements in (row, level) order
    P = bucket(total) if pad else total
    pair_j = aligned.zeros(P, np.int32)  # aligned: no copy into the compiled programs
    _take(el_j[src], ia, out=pair_j[:total])
    pair_t = aligned.full(P, r * r, np.int32)
    _take(el_row[src].astype(np.int32), ia, out=pair_t[:total])
    pair_t[:total] += np.repeat(np.arange(r, dtype=np.int32) * r, per_row)
    pair_v = aligned.zeros((P, q1, q1))
    B = el_B[src]
    if q1 == 1:
        np.multiply(_take(B[:, 0], ia), b_val, out=pair_v[:total, 0, 0])
    else:
        np.multiply(_take(B, ia)[:, :, None], _take(B, b_val)[:, None, :], out=pair_v[:total])
    return pair_j, pair_v, pair_t


def _pairs_message(total: int, q1: int, nz: int, nj: int, classes: str = "") -> str:
    gib = total * (8 * q1 * q1 + 12) / 2**30
    return (
        f"the first random-effects term and the others are crossed so densely that the "
        f"sparse update of the dense block needs {total:,} element pairs ({gib:.1f} GiB; "
        f"jaxmm refuses more than {MAX_PAIRS:,}): each level of the largest grouping "
        f"factor meets ~{nz / max(1, nj):.0f} levels of the others{classes}. "
        "Fewer levels in the smaller factors or fewer rows per level of the largest one "
        "would fit."
    )


def pair_count(el_row: np.ndarray, el_j: np.ndarray, layout: Layout) -> int:
    """Number of element pairs :func:`pairs` would build, in O(nnz) without sorting: per
    term-1 level with N_j elements in blocks of sizes s_b, (N_j^2 + sum_b s_b^2) / 2."""
    q_row = np.zeros(layout.rz, np.int64)
    for t in layout.rest:
        q_row[t.offset : t.offset + t.nlevels * t.q] = t.q
    nj = np.bincount(el_j).astype(np.int64)
    return int((nj @ nj + q_row[el_row].sum()) // 2)


def schur_arrays(el_row, el_j, el_B, el_blk, D1, C1, layout: Layout, pad: bool,
                 mode: str = "auto"):
    """The constant arrays of the Z-Z part of the Schur update: element pairs
    (``pair_j, pair_v, pair_t``) or classes of term-1 levels (``cls_j, cls_of, cls_M,
    cls_N``, see :mod:`jaxmm.design.classes`), the other kind empty.

    ``mode="auto"`` takes classes (scalar term 1 only) when their packed matrices are
    fewer than twice the pairs and the pairs number over :data:`CLASS_MIN_PAIRS`, or when
    the pairs exceed :data:`MAX_PAIRS`, provided the classes fit :data:`MAX_CLASS_BYTES`
    and :data:`MAX_CLASS_FLOPS`; ``"pairs"`` / ``"classes"`` force one (``ModelError``
    when it does not apply or fit)."""
    from .classes import class_cross, class_products, level_classes, packed_size

    q1, rz, r, p1 = layout.q1, layout.rz, layout.r, layout.p + 1
    no_cls = (np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, packed_size(rz))),
              np.zeros((0, rz, p1)))
    if mode not in ("auto", "pairs", "classes"):
        raise ModelError(f"unknown Schur update mode {mode!r} (auto, pairs or classes)")
    if mode == "classes" and q1 != 1:
        raise ModelError("the class update needs one column per level of the first term")
    if el_row.size == 0 or (mode == "pairs" or (mode == "auto" and q1 != 1)):
        return pairs(el_row, el_j, el_B, el_blk, r, rz, pad) + no_cls
    total = pair_count(el_row, el_j, layout)
    if mode == "auto" and total <= min(CLASS_MIN_PAIRS, MAX_PAIRS):
        return pairs(el_row, el_j, el_B, el_blk, r, rz, pad) + no_cls
    rep, cls_of = level_classes(D1, el_j)
    k, npk = rep.size, packed_size(rz)
    rows, nlev = int(el_row.max()) + 1, int((cls_of >= 0).sum())
    flops = rows * rows * nlev
    fits = k * npk * 8 <= MAX_CLASS_BYTES and flops <= MAX_CLASS_FLOPS
    need = (f"{k} classes of levels of equal counts would need {k} dense {rz} x {rz} "
            f"triangles ({k * npk * 8 / 2**30:.1f} GiB, {flops:.1e} multiply-adds to build; "
            f"limits {MAX_CLASS_BYTES / 2**30:.1f} GiB, {MAX_CLASS_FLOPS:.0e})")
    if mode == "auto" and not (fits and (total > MAX_PAIRS or k * npk < 2 * total)):
        if total > MAX_PAIRS:
            raise ModelError(_pairs_message(total, q1, el_row.size, nlev, "; " + need))
        return pairs(el_row, el_j, el_B, el_blk, r, rz, pad) + no_cls
    if not fits:  # forced
        raise ModelError(f"the class update is too large: {need}")
    M = class_products(el_row, el_j, el_B, cls_of, k, rz)
    N = class_cross(el_row, el_j, el_B, cls_of, C1, k, rz)
    K = bucket(k) if pad else k
    z = np.zeros(0, np.int32)
    return (z, np.zeros((0, q1, q1)), z, _pad(rep, K),
            np.maximum(cls_of, 0).astype(np.int32), _pad(M, K), _pad(N, K))
