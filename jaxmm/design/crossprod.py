"""Crossproducts of [Z X y] in the blocked layout, built once on the host in NumPy.

Everything here is O(nnz): bincounts over observations and sorts of (level, level) keys;
nothing of size n x q, and the only dense matrix is the rest block (Z columns of the terms
after the first, then X, then y), whose size the caller checks before building.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..core.layout import Blocks, Layout
from ..errors import ModelError

#: Largest dense rest block (rows) built: 8 bytes * r^2 must fit in memory.
MAX_DENSE = 20_000
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
    if a.shape[0] == n:
        return a
    pad = np.full((n - a.shape[0],) + a.shape[1:], value, dtype=a.dtype)
    return np.concatenate([a, pad])


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

    ``mode`` picks the form of the Schur update's Z-Z part (:func:`schur_arrays`).

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


def element_arrays(layout: Layout, keys: Sequence[np.ndarray], vals: Sequence[np.ndarray],
                   nlevels: Sequence[int]):
    """Non-zeros of Z_k' Z_1 as elements (row in the rest block, term-1 level, q1 values,
    block start) from each rest term's sorted (level-1 * nlevels_k + level_k) keys and
    their (E, q1, qk) sums."""
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


def _pair_plan(el_row, el_j, el_blk):
    """Sort order of the elements by (level of term 1, block, row), their levels, and each
    one's first partner position and number of partners (see :func:`pairs`)."""
    order = np.lexsort((el_row, el_blk, el_j))
    js, blks = el_j[order], el_blk[order]
    n = order.size
    new_j = np.r_[True, js[1:] != js[:-1]]
    new_blk = new_j | np.r_[True, blks[1:] != blks[:-1]]
    starts = np.maximum.accumulate(np.where(new_j, np.arange(n), 0))
    blk_start = np.flatnonzero(new_blk)
    blk_end = np.r_[blk_start[1:], n]
    ends = np.repeat(blk_end, np.diff(np.r_[blk_start, n]))
    return order, js, starts, ends - starts


def pairs(el_row, el_j, el_B, el_blk, r, rz, pad, plan=None):
    """Pairs (a, b) of elements sharing a term-1 level with block(b) <= block(a).

    Only the lower triangle of the rest block is needed, except inside one level's q x q
    diagonal block, which Lambda mixes as a whole: there both orders are kept. With the
    elements sorted by (level of term 1, block, row), the partners of element i are exactly
    the positions from its level's first element up to the end of its own block.
    """
    if el_row.size == 0:
        z = np.zeros(0, np.int32)
        return z, np.zeros((0, el_B.shape[1], el_B.shape[1])), z
    order, js, starts, lengths = plan if plan is not None else _pair_plan(el_row, el_j, el_blk)
    n = order.size
    total = int(lengths.sum())
    if total > MAX_PAIRS:
        raise ModelError(_pairs_message(total, el_B.shape[1], el_row.size, np.unique(js).size))
    a_pos = np.repeat(np.arange(n), lengths)
    b_pos = np.repeat(starts, lengths) + (np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths))
    a, b = order[a_pos], order[b_pos]
    # target in the transposed (upper) layout of the rest block, see core.blocked
    t = el_row[b].astype(np.int64) * r + el_row[a]
    v = el_B[a][:, :, None] * el_B[b][:, None, :]
    by_t = _order_by_target(el_row[b], el_row[a])
    P = bucket(total) if pad else total
    return (_pad(js[a_pos][by_t], P).astype(np.int32), _pad(v[by_t], P),
            _pad(t[by_t], P, r * r).astype(np.int32))


def _order_by_target(row_a: np.ndarray, row_b: np.ndarray) -> np.ndarray:
    """Order of the pairs by target (row_a major, row_b minor), so the update's scatter runs
    over sorted indices (2.5x faster on InstEval's 1.8 M pairs). Two stable 16-bit sorts,
    which NumPy does by radix in linear time, instead of a comparison sort of 64-bit keys."""
    if row_a.size == 0 or max(int(row_a.max()), int(row_b.max())) >= 1 << 16:
        return np.argsort(row_a.astype(np.int64) * (1 << 32) + row_b, kind="stable")
    first = np.argsort(row_b.astype(np.uint16), kind="stable")
    return first[np.argsort(row_a[first].astype(np.uint16), kind="stable")]


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
