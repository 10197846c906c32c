"""Crossproducts of W^{1/2}[Z X y] in JAX from per-row arrays (y, w, X differentiable).

The sparsity pattern (which level pairs meet, where each pair lands) is precomputed on the
host (:mod:`jaxmm.functional.design`); here only segment sums over rows and gathers of the
precomputed element pairs run, so the blocks are pure, differentiable functions of the
per-row data. Without weights and with the design's X, only the y-dependent parts are
recomputed (``with_response``): the fast path.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import ops

from ..core.layout import Blocks, with_response
from ..errors import DataError
from .design import MixedDesign


def _check(name: str, a, shape: tuple[int, ...]) -> None:
    if tuple(jnp.shape(a)) != shape:
        raise DataError(f"{name} must have shape {shape} (the design's), got {tuple(jnp.shape(a))}")


def resolve(design: MixedDesign, y=None, w=None, X=None):
    """Fill in defaults and check shapes: (y, w, X) with y and X never None."""
    n, p = design.X.shape
    y = design.y if y is None else y
    _check("y", y, (n,))
    if w is not None:
        _check("w", w, (n,))
    if X is not None:
        _check("X", X, (n, p))
    return y, w, X


def response_parts(design: MixedDesign, y) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Z1'y per level of term 1 (l1, q1) and [Z_rest X y]'y (r,), unweighted."""
    lay = design.layout
    y = jnp.asarray(y)
    C1y = ops.segment_sum(design.Z1 * y[:, None], design.idx1, num_segments=lay.l1)
    Zry = ops.segment_sum(
        (design.zr_val * y[:, None]).reshape(-1), design.zr_col.reshape(-1), num_segments=lay.rz
    )
    return C1y, jnp.concatenate([Zry, design.X.T @ y, jnp.reshape(y @ y, (1,))])


def weighted_blocks(design: MixedDesign, y, w=None, X=None) -> Blocks:
    """All crossproducts of W^{1/2}[Z X y] (w: prior weights per row, default 1)."""
    lay = design.layout
    X = design.X if X is None else X
    y = jnp.asarray(y)
    n = y.shape[0]
    w = jnp.ones_like(y) if w is None else jnp.asarray(w)
    XY = jnp.concatenate([jnp.asarray(X, y.dtype), y[:, None]], axis=1)
    wZ1 = w[:, None] * design.Z1
    D1 = ops.segment_sum(wZ1[:, :, None] * design.Z1[:, None, :], design.idx1, num_segments=lay.l1)
    C1 = ops.segment_sum(wZ1[:, :, None] * XY[:, None, :], design.idx1, num_segments=lay.l1)
    Axx = XY.T @ (w[:, None] * XY)
    rz, m = lay.rz, design.zr_col.shape[1]
    if m:
        wzr = w[:, None] * design.zr_val  # (n, m)
        Nz = design.blocks.el_row.shape[0]
        B = (wZ1[:, None, :] * design.zr_val[:, :, None]).reshape(n * m, lay.q1)
        el_B = ops.segment_sum(B, design.zr_el.reshape(-1), num_segments=Nz)
        pair_v = el_B[design.pair_a][:, :, None] * el_B[design.pair_b][:, None, :]
        flat = (design.zr_col[:, :, None] * rz + design.zr_col[:, None, :]).reshape(-1)
        Azz = ops.segment_sum(
            (wzr[:, :, None] * design.zr_val[:, None, :]).reshape(-1), flat, num_segments=rz * rz
        ).reshape(rz, rz)
        Azx = ops.segment_sum(
            (wzr[:, :, None] * XY[:, None, :]).reshape(n * m, -1),
            design.zr_col.reshape(-1), num_segments=rz,
        )
        A = jnp.concatenate(
            [jnp.concatenate([Azz, Azx], 1), jnp.concatenate([Azx.T, Axx], 1)], 0
        )
    else:
        el_B = jnp.zeros((0, lay.q1), y.dtype)
        pair_v = jnp.zeros((0, lay.q1, lay.q1), y.dtype)
        A = Axx
    b = design.blocks
    return Blocks(
        D1=D1, C1=C1, el_row=b.el_row, el_j=b.el_j, el_B=el_B,
        pair_j=b.pair_j, pair_v=pair_v, pair_t=b.pair_t,
        cls_j=b.cls_j, cls_of=b.cls_of, cls_M=jnp.asarray(b.cls_M, y.dtype),
        cls_N=jnp.asarray(b.cls_N, y.dtype), A=A, n=jnp.asarray(b.n, y.dtype),
    )


def blocks_for(design: MixedDesign, y=None, w=None, X=None) -> Blocks:
    """The crossproduct blocks for this response, weights and X (fast path when w and X
    are None: only the y-dependent blocks are recomputed)."""
    y, w, X = resolve(design, y, w, X)
    if w is None and X is None:
        C1y, Ay = response_parts(design, y)
        b = design.blocks
        blocks = b._replace(**{k: jnp.asarray(getattr(b, k), C1y.dtype) for k in ("D1", "C1", "el_B", "pair_v", "cls_M", "cls_N", "A", "n")})
        return with_response(blocks, design.layout, C1y, Ay)
    return weighted_blocks(design, y, w, X)
