"""The blocked factorization of the augmented system [Z Lambda, X, y], up to its dense part.

Term 1's diagonal block is block diagonal: ``M_j = T1' D1_j T1 + I`` per level, factored as a
batch of tiny Choleskys. Eliminating term 1 leaves the Schur complement of everything
after it (the other terms' Z columns, X, y):

    S = Lambda_a' (A - sum_j K_j C_j K_j') Lambda_a + I_z,   C_j = T1 M_j^{-1} T1'

where ``K_j`` is level j's column block of [Z_rest X y]' Z_1 (constant data), ``A`` the dense
crossproduct of the rest, and ``Lambda_a = blockdiag(Lambda_rest, I)``. The sparse part of
the update is one sorted scatter-add of pre-computed pairs of non-zeros of ``K_j`` into A —
the pair products are constant, only the small ``C_j`` change with theta — never a dense
product. With a scalar term 1 and many pairs it is instead ``sum_k c_k M_k`` over classes
of levels of equal ``D1_j`` (:mod:`jaxmm.design.classes`): one tensordot with constant
matrices.

The block is formed transposed, ``St = S'``, and only its upper triangle is valid (plus the
whole of each level's q x q diagonal block, which Lambda mixes): in row-major order that is
exactly the lower triangle LAPACK reads in column-major order, so the dense Cholesky
(:func:`jaxmm.core.logchol.chol_t`) takes it without a transposing copy and every pass over
the block, forward and in the derivative, stays in one layout.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import ops

from . import small
from .layout import Blocks, Layout, split_theta


def take_rows(x: jnp.ndarray, idx: jnp.ndarray) -> jnp.ndarray:
    """``x[idx]`` along axis 0 for in-bounds, non-negative ``idx`` (data of the design).

    A plain gather: ``jnp`` indexing first maps negative indices with a select over the whole
    index array, an extra pass over InstEval's 1.8 M pair indices per evaluation and again
    in the derivative's scatter."""
    dn = jax.lax.GatherDimensionNumbers(
        offset_dims=tuple(range(1, x.ndim)), collapsed_slice_dims=(0,), start_index_map=(0,))
    return jax.lax.gather(x, idx[:, None], dn, (1,) + x.shape[1:],
                          mode=jax.lax.GatherScatterMode.PROMISE_IN_BOUNDS)


def scatter_add_sorted(x: jnp.ndarray, idx: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """``x`` (flat) with ``v`` added at the sorted, non-negative ``idx``; indices past the
    end (padding) are dropped."""
    dn = jax.lax.ScatterDimensionNumbers(
        update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,))
    return jax.lax.scatter_add(x, idx[:, None], v, dn, indices_are_sorted=True,
                               mode=jax.lax.GatherScatterMode.FILL_OR_DROP)


def T_of(theta_k: jnp.ndarray, q: int) -> jnp.ndarray:
    """Lower-triangular relative factor from one term's theta (lme4's column-major order).

    Built column by column from slices (not a scatter: XLA's CPU backend turns a scatter,
    and the scatter of its derivative, into loops of their own, which cost compile time in
    every program that differentiates the criterion)."""
    cols, start = [], 0
    for j in range(q):
        col = theta_k[start : start + q - j]
        start += q - j
        cols.append(jnp.concatenate([jnp.zeros(j, theta_k.dtype), col]) if j else col)
    return jnp.stack(cols, axis=1)


class Partial(NamedTuple):
    """Term 1 factored and the rest block's Schur complement (before its dense Cholesky)."""

    L11: jnp.ndarray  # (l1, q1, q1) Cholesky factors of M_j
    C: jnp.ndarray  # (l1, q1, q1) T1 M_j^{-1} T1'
    logdet1: jnp.ndarray  # log det of term 1's diagonal block
    St: jnp.ndarray  # (r, r) the rest block's Schur complement transposed (upper triangle valid)
    Ts: tuple[jnp.ndarray, ...]  # relative factors of every term


def scale_rest(U: jnp.ndarray, layout: Layout, Ts_rest, side: str) -> jnp.ndarray:
    """Lambda_a' U (side="left") or U Lambda_a (side="right"); X/y rows or columns untouched."""
    if side == "right":
        return scale_rest(U.T, layout, Ts_rest, "left").T
    if all(t.q == 1 for t in layout.rest):  # diagonal Lambda: one elementwise product
        d = [jnp.broadcast_to(T[0, 0], (t.nlevels,)) for t, T in zip(layout.rest, Ts_rest)]
        pad = jnp.ones(U.shape[0] - sum(t.nlevels for t in layout.rest), U.dtype)
        return jnp.concatenate(d + [pad])[:, None] * U
    parts, end = [], 0
    for term, T in zip(layout.rest, Ts_rest):
        blk = U[term.offset : term.offset + term.nlevels * term.q]
        blk = blk.reshape(term.nlevels, term.q, U.shape[1])
        parts.append(small.matmul(T.T, blk).reshape(-1, U.shape[1]))
        end = term.offset + term.nlevels * term.q
    parts.append(U[end:])
    return jnp.concatenate(parts, axis=0)


def scale_both(U: jnp.ndarray, layout: Layout, Ts_rest) -> jnp.ndarray:
    """Lambda_a' U Lambda_a."""
    if all(t.q == 1 for t in layout.rest):
        d = [jnp.broadcast_to(T[0, 0], (t.nlevels,)) for t, T in zip(layout.rest, Ts_rest)]
        pad = jnp.ones(U.shape[0] - sum(t.nlevels for t in layout.rest), U.dtype)
        d = jnp.concatenate(d + [pad])
        return d[:, None] * U * d[None, :]
    return scale_rest(scale_rest(U, layout, Ts_rest, "left"), layout, Ts_rest, "right")


def term1(theta1: jnp.ndarray, D1: jnp.ndarray, q1: int):
    """Factor term 1's blocks: T1, L11 = chol(T1' D1 T1 + I), G = T1 L11^{-T},
    C = G G' = T1 M^{-1} T1', and the log determinant."""
    T1 = T_of(theta1, q1)
    if q1 == 2:
        return (T1,) + _term1_2x2(theta1, D1)
    M = small.matmul(small.matmul(T1.T, D1), T1) + jnp.eye(q1, dtype=theta1.dtype)
    L11 = small.chol(M)
    G = small.matmul(T1, small.mT(small.tril_inv(L11)))
    C = small.matmul(G, small.mT(G))
    return T1, L11, G, C, small.logdiag2(L11)


def _term1_2x2(t: jnp.ndarray, D1: jnp.ndarray):
    """:func:`term1` for 2 x 2 blocks in closed form, on the (l1,) arrays of entries: the
    whole computation and its derivative fuse into a few elementwise loops (star: term 1's
    value and gradient 1.8 ms as batched 2 x 2 products and stacks)."""
    t0, t1, t2 = t[0], t[1], t[2]
    d00, d01, d11 = D1[:, 0, 0], D1[:, 1, 0], D1[:, 1, 1]
    e = d01 * t0 + d11 * t1  # (D T)[1, 0]
    m00 = t0 * (d00 * t0 + d01 * t1) + t1 * e + 1.0
    a = jnp.sqrt(m00)
    b = t2 * e / a
    c = jnp.sqrt(t2 * t2 * d11 + 1.0 - b * b)
    ba = b / (a * c)
    g00, g01, g10, g11 = t0 / a, -t0 * ba, t1 / a, t2 / c - t1 * ba
    z = jnp.zeros_like(a)
    L11 = jnp.stack([jnp.stack([a, z], -1), jnp.stack([b, c], -1)], -2)
    G = jnp.stack([jnp.stack([g00, g01], -1), jnp.stack([g10, g11], -1)], -2)
    c01 = g00 * g10 + g01 * g11
    C = jnp.stack([jnp.stack([g00 * g00 + g01 * g01, c01], -1),
                   jnp.stack([c01, g10 * g10 + g11 * g11], -1)], -2)
    return L11, G, C, 2.0 * jnp.sum(jnp.log(a) + jnp.log(c))


def partial_factor(theta: jnp.ndarray, blocks: Blocks, layout: Layout,
                   batched: bool = False) -> Partial:
    """Factor term 1 and build the rest block's Schur complement, transposed (``St``: its
    upper triangle is valid, see the module docstring).

    ``batched``: the caller vmaps this over lanes (a batched fit). The X rows of the update
    are then formed with batched dots, which XLA runs well across lanes; for one model the
    unrolled elementwise forms are faster (star: 5.6 against 7.2 ms per value+gradient),
    while under vmap they doubled penicillin's 500-replicate bootstrap (0.25 -> 0.5 s)."""
    thetas = split_theta(theta, layout)
    T1, L11, G, C, logdet1 = term1(thetas[0], blocks.D1, layout.q1)
    Ts_rest = tuple(T_of(t, q) for t, q in zip(thetas[1:], layout.qs[1:]))
    r, rz = layout.r, layout.rz

    # sum_j K_j C_j K_j' in the unscaled space, transposed: the Z-Z part scattered into the
    # upper triangle, the [X y] columns (cross with Z, then with [X y]) as dense columns.
    if batched:  # C_j = G_j G_j': sum_j C1_j' C_j C1_j = Wxy' Wxy, Wxy_j = G_j' C1_j
        Wxy = jnp.einsum("jca,jck->jak", G, blocks.C1)  # (l1, q1, p+1)
        Wflat = Wxy.reshape(-1, Wxy.shape[-1])
        xx = Wflat.T @ Wflat  # (p+1, p+1)
    else:  # sum_j C1_j' C_j C1_j = C1' Y with Y_j = C_j C1_j (elementwise): one GEMM
        Y = small.matmul(C, blocks.C1)  # (l1, q1, p+1)
        xx = blocks.C1.reshape(-1, Y.shape[-1]).T @ Y.reshape(-1, Y.shape[-1])
    M = blocks.A
    if blocks.el_row.shape[0]:
        if blocks.cls_j.shape[0]:  # classes of equal D1: sum_k c_k M_k, unpacked symmetric
            ii = jax.lax.broadcasted_iota(jnp.int32, (rz, rz), 0)
            jj = jax.lax.broadcasted_iota(jnp.int32, (rz, rz), 1)
            zz = jnp.tensordot(C[blocks.cls_j, 0, 0], blocks.cls_M, axes=1)
            a, b = jnp.maximum(ii, jj), jnp.minimum(ii, jj)
            M = M.at[:rz, :rz].add(-jnp.take(zz, a * (a + 1) // 2 + b))
            xz = jnp.tensordot(C[blocks.cls_j, 0, 0], blocks.cls_N, axes=1)  # (rz, p+1)
        else:  # pairs sorted by target: one scatter-add (indices in bounds or dropped)
            zz = jnp.einsum("pcd,pcd->p", blocks.pair_v, take_rows(C, blocks.pair_j))
            if batched:  # a segment sum, then one subtraction: vmapped, a scatter into
                # each lane's A ran 30 % slower (penicillin's 500-replicate bootstrap)
                U = ops.segment_sum(zz, blocks.pair_t, num_segments=r * r + 1,
                                    indices_are_sorted=True)[: r * r]
                M = M - U.reshape(r, r)
                v = jnp.einsum("ec,eca->ea", blocks.el_B, G[blocks.el_j])  # G_j' B_e
                xz = jnp.einsum("ea,eak->ek", v, Wxy[blocks.el_j])
            else:
                M = scatter_add_sorted(M.reshape(-1), blocks.pair_t, -zz).reshape(r, r)
                # B_e' C_j C1_j: theta enters through the gathered C only (q1^2 values per
                # element, where gathering G and Wxy cost q1 (q1 + p + 1) in the derivative's
                # scatter); the gathered C1 is data.
                w = small.matmul(blocks.el_B[:, None, :], take_rows(C, blocks.el_j))  # (E, 1, q1)
                xz = small.matmul(w, take_rows(blocks.C1, blocks.el_j))[:, 0, :]
            xz = ops.segment_sum(xz, blocks.el_row, num_segments=rz)  # (rz, p+1)
        M = M.at[:rz, rz:].add(-xz)
    M = M.at[rz:, rz:].add(-xx.T)

    ii = jax.lax.broadcasted_iota(jnp.int32, (r, r), 0)
    jj = jax.lax.broadcasted_iota(jnp.int32, (r, r), 1)
    eye_z = ((ii == jj) & (ii < rz)).astype(theta.dtype)
    St = scale_both(M, layout, Ts_rest) + eye_z
    return Partial(L11=L11, C=C, logdet1=logdet1, St=St, Ts=(T1,) + Ts_rest)
