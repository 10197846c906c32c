"""Crossproducts of [Z X y] as running sums over chunks of rows.

Every block is a sum over observations, so rows may arrive in any number of chunks: the
dense parts (term 1's per-level blocks, the rest block) are added chunk by chunk; the sparse
cross block of term 1 with the other terms is kept as (level pair, values) elements that
are merged by key (summing duplicates) when they pile up and at the end. One chunk holding
all rows gives exactly :func:`~jaxmm.design.crossprod.crossproducts`; the sizes (levels of
every term) must be known up front, which is why streamed data take a first pass.

Example:
    >>> import numpy as np
    >>> g, h = np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 0, 1, 0, 0])
    >>> y, X, Xt = np.arange(6.0), np.ones((6, 1)), np.ones((6, 1))
    >>> acc = CrossAccumulator([3, 2], [1, 1], 1, pad=False)
    >>> for s in (slice(0, 2), slice(2, 6)):                      # two chunks
    ...     acc.add(y[s], X[s], [g[s], h[s]], [Xt[s], Xt[s]])
    >>> layout, blocks = acc.finish()
    >>> float(blocks.A[0, 0]), blocks.el_j.tolist(), float(blocks.n)
    (4.0, [0, 0, 1, 1, 2], 6.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace

import numpy as np

from .. import aligned
from ..core.layout import Blocks, Layout, RestTerm
from .crossprod import _bincount_products, _pad, _pair_keys, add_rest_block, bucket, bucket_dense
from .random import compact_codes
from .schur import element_arrays, schur_arrays

__all__ = ["CrossAccumulator"]


class CrossAccumulator:
    """Running sums of the blocked crossproducts for terms with known sizes.

    Args:
        nlevels: levels of each random-effects term, sorted as the design sorts them.
        qs: columns of each term's model matrix.
        p: fixed-effects columns.
        pad: round sizes up to buckets (shared compiled code), as ``crossproducts`` does.
        mode: form of the Schur update's Z-Z part ("auto", "pairs", "classes"; see
            :func:`~jaxmm.design.schur.schur_arrays`).
    """

    def __init__(self, nlevels: Sequence[int], qs: Sequence[int], p: int, *, pad: bool = True,
                 mode: str = "auto"):
        self.nlevels, self.qs, self.p, self.pad = [int(v) for v in nlevels], list(qs), p, pad
        self.mode = mode
        q1, n1 = self.qs[0], self.nlevels[0]
        l1 = bucket(n1, 4) if pad else n1
        rest, offset = [], 0
        for qk, nk in zip(self.qs[1:], self.nlevels[1:]):
            nl = bucket_dense(nk) if pad else nk  # padded levels are inert
            rest.append(RestTerm(q=qk, nlevels=nl, offset=offset))
            offset += nl * qk
        rz = (bucket(offset, 16) if offset < 512 else bucket(offset, 64)) if pad else offset
        self.layout = Layout(q1=q1, l1=l1, rest=tuple(rest), rz=rz, p=p, qs=tuple(self.qs))
        r = self.layout.r
        # aligned: the compiled programs take them without a copy (jaxmm.aligned)
        self.D1 = aligned.zeros((l1, q1, q1))
        self.C1 = aligned.zeros((l1, q1, p + 1))
        self.A = aligned.zeros((r, r))
        self.keys: list[list[np.ndarray]] = [[] for _ in rest]
        self.vals: list[list[np.ndarray]] = [[] for _ in rest]
        self._pending = self._merged = 0
        self.n = 0

    def add(self, y: np.ndarray, X: np.ndarray, indices: Sequence[np.ndarray],
            Xts: Sequence[np.ndarray]) -> None:
        """Add the crossproducts of these rows (level index and model matrix per term)."""
        n1 = self.nlevels[0]
        XY = np.column_stack([X, y])
        idx1, Xt1 = np.asarray(indices[0]), Xts[0]
        self.D1[:n1] += _bincount_products(idx1, Xt1, Xt1, n1)
        self.C1[:n1] += _bincount_products(idx1, Xt1, XY, n1)
        rest = [SimpleNamespace(index=i, Xt=x, nlevels=nk)
                for i, x, nk in zip(indices[1:], Xts[1:], self.nlevels[1:])]
        for k, t in enumerate(rest):
            j, lvl, inv = _pair_keys(idx1, np.asarray(t.index), t.nlevels)
            self.keys[k].append(j * t.nlevels + lvl)
            self.vals[k].append(_bincount_products(inv, Xt1, t.Xt, len(j)))
            self._pending += len(j)
        add_rest_block(self.A, XY, rest, self.layout.rest, self.layout.rz)
        self.n += XY.shape[0]
        if self._pending > max(2 * self._merged, 1 << 20):  # amortized: merge when doubled
            self._merge()

    def _merge(self) -> None:
        total = 0
        for k in range(len(self.keys)):
            if len(self.keys[k]) > 1:
                key, val = np.concatenate(self.keys[k]), np.concatenate(self.vals[k])
                u, inv = compact_codes(key, self.nlevels[0] * self.nlevels[k + 1])
                out = np.empty((len(u),) + val.shape[1:])
                for a in range(val.shape[1]):
                    for b in range(val.shape[2]):
                        out[:, a, b] = np.bincount(inv, val[:, a, b], minlength=len(u))
                self.keys[k], self.vals[k] = [u], [out]
            total += len(self.keys[k][0]) if self.keys[k] else 0
        self._pending = self._merged = total

    def finish(self) -> tuple[Layout, Blocks]:
        """The static layout and the summed (NumPy) blocks."""
        self._merge()
        layout, pad = self.layout, self.pad
        keys = [k[0] if k else np.zeros(0, np.int64) for k in self.keys]
        vals = [v[0] if v else np.zeros((0, layout.q1, lk.q)) for v, lk in zip(self.vals, layout.rest)]
        el_row, el_j, el_B, el_blk = element_arrays(layout, keys, vals, self.nlevels[1:])
        pair_j, pair_v, pair_t, cls_j, cls_of, cls_M, cls_N = schur_arrays(
            el_row, el_j, el_B, el_blk, self.D1, self.C1, layout, pad, self.mode)
        Nz = bucket(el_row.size) if pad else el_row.size
        blocks = Blocks(
            D1=self.D1, C1=self.C1, el_row=_pad(el_row, Nz), el_j=_pad(el_j, Nz),
            el_B=_pad(el_B, Nz), pair_j=pair_j, pair_v=pair_v, pair_t=pair_t,
            cls_j=cls_j, cls_of=cls_of, cls_M=cls_M, cls_N=cls_N, A=self.A,
            n=np.float64(self.n),
        )
        return layout, blocks
