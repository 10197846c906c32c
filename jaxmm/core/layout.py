"""The static description of the blocked crossproduct system, and its array blocks.

Random-effects terms are sorted by number of levels (largest first). Term 1's diagonal
block of Z'Z is block diagonal (one q1 x q1 block per level); everything after it —
the other terms' Z columns, then X, then y — forms one dense "rest" block. Term 1's
cross block with the other Z terms is stored sparsely as (term-1 level, term-k level)
pairs; its cross block with [X y] is dense per level.

``Layout`` is static (hashable, part of the jit cache key: shapes and term sizes only).
``Blocks`` is a pytree of arrays (the data). Array sizes may be padded to buckets so that
models of similar size share compiled code; padding is inert (zero crossproducts).
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
from jax import ops


class RestTerm(NamedTuple):
    """A random-effects term after the first: columns per level, levels, row offset."""

    q: int
    nlevels: int
    offset: int


class Layout(NamedTuple):
    """Static shape information of a linear mixed model's crossproduct blocks.

    Attributes:
        q1: columns per level of term 1.
        l1: number of (padded) levels of term 1 (0 when the model has no term... never).
        rest: the other random-effects terms, in order, with their row offsets in the
            rest block.
        rz: number of (padded) Z rows in the rest block; X rows start here.
        p: number of fixed-effects columns.
        qs: columns per level of every term (term 1 first).
    """

    q1: int
    l1: int
    rest: tuple[RestTerm, ...]
    rz: int
    p: int
    qs: tuple[int, ...]

    @property
    def r(self) -> int:
        """Size of the dense rest block: rz + p + 1 (the last row is y)."""
        return self.rz + self.p + 1

    @property
    def theta_sizes(self) -> tuple[int, ...]:
        return tuple(q * (q + 1) // 2 for q in self.qs)

    @property
    def n_theta(self) -> int:
        return sum(self.theta_sizes)


class Blocks(NamedTuple):
    """Crossproducts of [Z X y] in blocked form (a pytree; y enters only via the y parts).

    Attributes:
        D1: (l1, q1, q1) diagonal blocks of Z1'Z1.
        C1: (l1, q1, p+1) Z1'[X y] per level of term 1.
        el_row, el_j, el_B: (Nz,), (Nz,), (Nz, q1): the non-zeros of Z_rest'Z1 — for each
            (row of the rest block, level of term 1) pair, the row of that level's q1 columns.
        pair_j, pair_v, pair_t: (P,), (P, q1, q1), (P,): pairs of non-zeros (a, b) sharing a
            level j of term 1 with row(a) >= row(b) (both orders inside a level's diagonal
            block): j, outer(B_a, B_b), and the flat target row(b) * r + row(a) in the
            transposed rest block (int32, sorted; r * r marks padding). Empty in the class
            mode.
        cls_j, cls_of, cls_M, cls_N: (K,), (l1,), (K, rz(rz+1)/2), (K, rz, p+1): the class
            mode (scalar term 1, see :mod:`jaxmm.design.classes`): a representative term-1
            level per class of equal D1, each level's class, the class's sum_j k_j k_j' over
            the Z rows as a packed lower triangle (row-major), and its sum_j k_j C1_j'
            (kept in step with C1: :func:`with_response`, :func:`transform_xy`). Empty in
            the pair mode; padded classes have zero matrices.
        A: (r, r) dense [Z_rest X y]'[Z_rest X y].
        n: number of observations (float scalar).
    """

    D1: jnp.ndarray
    C1: jnp.ndarray
    el_row: jnp.ndarray
    el_j: jnp.ndarray
    el_B: jnp.ndarray
    pair_j: jnp.ndarray
    pair_v: jnp.ndarray
    pair_t: jnp.ndarray
    cls_j: jnp.ndarray
    cls_of: jnp.ndarray
    cls_M: jnp.ndarray
    cls_N: jnp.ndarray
    A: jnp.ndarray
    n: jnp.ndarray


def split_theta(theta: jnp.ndarray, layout: Layout) -> list[jnp.ndarray]:
    """Split the flat theta vector into per-term pieces (lme4 order)."""
    out, start = [], 0
    for size in layout.theta_sizes:
        out.append(theta[start : start + size])
        start += size
    return out


def with_response(blocks: Blocks, layout: Layout, C1y: jnp.ndarray, Ay: jnp.ndarray) -> Blocks:
    """Replace the y-dependent parts: C1[..., -1] = C1y (l1, q1), A[-1, :] = A[:, -1] = Ay (r,).

    This is how a bootstrap or a many-response fit batches: only these leaves change.
    """
    C1 = blocks.C1.at[..., -1].set(C1y)
    A = blocks.A.at[-1, :].set(Ay).at[:, -1].set(Ay)
    if blocks.cls_j.shape[0]:  # class mode: the classes' y column follows C1's
        K, rz = blocks.cls_N.shape[:2]
        tgt = blocks.cls_of[blocks.el_j] * rz + blocks.el_row
        Ny = ops.segment_sum(blocks.el_B[:, 0] * C1y[blocks.el_j, 0], tgt, num_segments=K * rz)
        return blocks._replace(C1=C1, A=A, cls_N=blocks.cls_N.at[..., -1].set(Ny.reshape(K, rz)))
    return blocks._replace(C1=C1, A=A)


def transform_xy(blocks: Blocks, C1, T):
    """``blocks`` with C1 replaced by ``C1 = old C1 @ T`` for a (p+1, p+1) transform of the
    [X y] columns, the class mode's cross sums transformed alike (NumPy or JAX arrays)."""
    if blocks.cls_j.shape[0]:
        return blocks._replace(C1=C1, cls_N=blocks.cls_N @ T)
    return blocks._replace(C1=C1)


def row_weights(layout: Layout, reml: bool, N: jnp.ndarray, dtype) -> jnp.ndarray:
    """Weights of log L_ii^2 over the rest block: 1 on Z rows, REML on X rows, N on y."""
    return jnp.concatenate(
        [
            jnp.ones(layout.rz, dtype),
            jnp.full(layout.p, 1.0 if reml else 0.0, dtype),
            jnp.reshape(N, (1,)).astype(dtype),
        ]
    )
