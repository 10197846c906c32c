"""The blocked PIRLS system ``Lambda'Z'WZ Lambda + I`` (and beta's columns) of a GLMM.

Term 1 (most levels) is block-diagonal, one q1 x q1 block per level; the other terms form
one dense block (rows ``0..rz``), beta's columns (when beta is updated inside PIRLS) come
after them. Its Cholesky factor is ``[[L11, 0], [L21, L22]]`` with L11 a batch of tiny
factors and L22 the factor of the Schur complement.

The cross block L21 is stored in one of two forms, chosen on the host from its sparsity
(the DESIGN note on InstEval: update the Schur complement from the non-zeros, never by a
dense product when the block is sparse):

* dense: ``(rz, n1 q1)`` (VerbAgg: every subject sees every item);
* sparse: the values ``(K, q1)`` of its K non-zero (row, level) pairs, with the Schur update
  ``sum_j L21[:, j] L21[:, j]'`` a scatter-add over the pairs of non-zeros that share a
  level (grouseticks: 1,612 pairs instead of a 181 x 403 x 181 product).

Beta's part of the cross block is always dense, ``(n1, p, q1)``; ``X'WX`` is a matrix
product. Nothing here forms Z.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from . import small

#: Use the sparse cross block when (pairs of non-zeros) x this < the dense product's flops.
SPARSE_RATIO = 40


class Pattern(NamedTuple):
    """Non-zero pattern of term 1's cross block with the other terms (host-built arrays).

    Attributes:
        slot: (n, m) non-zero slot of each observation's entries in the rest block.
        row: (K,) rest row of each slot; lev: (K,) term-1 level of each slot.
        pa, pb: (P,) pairs of slots sharing a level (all ordered pairs).
    """

    slot: np.ndarray
    row: np.ndarray
    lev: np.ndarray
    pa: np.ndarray
    pb: np.ndarray


def cross_pattern(rest_cols: np.ndarray, idx1: np.ndarray, rz: int, n1: int, q1: int):
    """The sparse pattern, or None when the dense product is cheaper."""
    n, m = rest_cols.shape
    if m == 0:
        return None
    key = idx1.astype(np.int64)[:, None] * rz + rest_cols
    uniq, inv = np.unique(key.reshape(-1), return_inverse=True)
    lev, row = uniq // rz, uniq % rz
    counts = np.bincount(lev, minlength=n1)
    n_pairs = int(np.sum(counts.astype(np.int64) ** 2))
    if n_pairs * SPARSE_RATIO >= rz * rz * n1 * q1:
        return None
    start = np.concatenate([[0], np.cumsum(counts)[:-1]])
    owner = np.repeat(np.arange(n1), counts * counts)  # level of each pair
    k = np.arange(n_pairs) - np.repeat(np.concatenate([[0], np.cumsum(counts * counts)[:-1]]),
                                      counts * counts)
    c = counts[owner]
    pa, pb = start[owner] + k // c, start[owner] + k % c
    i32 = lambda a: np.asarray(a, np.int32)  # noqa: E731
    return Pattern(i32(inv.reshape(n, m)), i32(row), i32(lev), i32(pa), i32(pb))


class Factor(NamedTuple):
    """Cholesky factor: L11 (n1, q1, q1) blocks, their inverses, L21, L22 (r, r).

    L21 is ``(rest, LX)``: rest the dense (rz, n1 q1) block or the sparse (K, q1) values,
    LX (n1, p, q1) beta's part (p = 0 without beta). :func:`dense_factor` gives a dense
    (r, n1 q1) L21.
    """

    L11: jnp.ndarray
    L11inv: jnp.ndarray
    L21: tuple
    L22: jnp.ndarray


def schur(w, zl, data, lay, with_beta: bool):
    """Term 1's factors (and inverses), the cross block L21 and the Schur complement."""
    q1, n1, rz, p = lay.qs[0], lay.nlevels[0], lay.rz, lay.p
    z1, idx1 = zl[0], data.idx[0]
    A11 = jax.ops.segment_sum(w[:, None, None] * z1[:, :, None] * z1[:, None, :], idx1, n1)
    L11 = small.chol(A11 + jnp.eye(q1))
    Li = small.tril_inv(L11)
    pat = data.pattern
    if rz:
        vals = jnp.concatenate(zl[1:], axis=1)  # (n, m)
        cols = data.rest_cols
        wv = w[:, None] * vals
        Srr = jnp.zeros((rz, rz)).at[cols[:, :, None], cols[:, None, :]].add(
            wv[:, :, None] * vals[:, None, :]) + jnp.eye(rz)
        contrib = wv[:, :, None] * z1[:, None, :]  # (n, m, q1)
        if pat is not None:
            A21 = jax.ops.segment_sum(contrib.reshape(-1, q1), pat.slot.reshape(-1),
                                      pat.row.shape[0])  # (K, q1)
            R21 = jnp.einsum("sb,sab->sa", A21, Li[pat.lev])
            prod = jnp.sum(R21[pat.pa] * R21[pat.pb], axis=1)
            Srr = Srr.at[pat.row[pat.pa], pat.row[pat.pb]].add(-prod)
        else:
            c1 = idx1[:, None] * q1 + jnp.arange(q1)[None, :]
            A21 = jnp.zeros((rz, n1 * q1)).at[cols[:, :, None], c1[:, None, :]].add(contrib)
            R21 = jnp.einsum("rjb,jcb->rjc", A21.reshape(rz, n1, q1), Li).reshape(rz, n1 * q1)
            Srr = Srr - R21 @ R21.T
    else:
        R21, Srr = jnp.zeros((0, n1 * q1)), jnp.zeros((0, 0))
    if not with_beta:
        return L11, Li, (R21, jnp.zeros((n1, 0, q1))), Srr
    X = data.X
    wX = w[:, None] * X
    AX1 = jax.ops.segment_sum(wX[:, :, None] * z1[:, None, :], idx1, n1)  # (n1, p, q1)
    LX = jnp.einsum("jkb,jab->jka", AX1, Li)
    Sbb = X.T @ wX - jnp.einsum("jka,jla->kl", LX, LX)
    if rz:
        Arb = jax.ops.segment_sum((wv[:, :, None] * X[:, None, :]).reshape(-1, p),
                                  cols.reshape(-1), rz)  # (rz, p)
        Srb = Arb - _rest_times_x(R21, LX, data, lay)
        S = jnp.concatenate([jnp.concatenate([Srr, Srb], 1), jnp.concatenate([Srb.T, Sbb], 1)], 0)
    else:
        S = Sbb
    return L11, Li, (R21, LX), S


def _rest_times_x(R21, LX, data, lay):
    """sum_j R21[:, j] LX[j]' : (rz, p)."""
    pat = data.pattern
    if pat is not None:
        return jax.ops.segment_sum(jnp.einsum("sa,ska->sk", R21, LX[pat.lev]), pat.row, lay.rz)
    n1, q1 = LX.shape[0], LX.shape[2]
    return R21 @ LX.transpose(0, 2, 1).reshape(n1 * q1, -1)


def factor(w, zl, data, lay, with_beta: bool) -> Factor:
    """Factor the PIRLS system for weights ``w`` (n,); beta's columns last if ``with_beta``."""
    L11, Li, L21, S = schur(w, zl, data, lay, with_beta)
    L22 = jnp.linalg.cholesky(S) if S.shape[0] else S
    return Factor(L11, Li, L21, L22)


def _l21_matvec(F: Factor, c1, data, lay):
    """L21 @ c1 (c1 (n1, q1)) -> (r,)."""
    R21, LX = F.L21
    pat = data.pattern
    if lay.rz == 0:
        top = jnp.zeros(0)
    elif pat is not None:
        top = jax.ops.segment_sum(jnp.sum(R21 * c1[pat.lev], axis=1), pat.row, lay.rz)
    else:
        top = R21 @ c1.reshape(-1)
    return jnp.concatenate([top, jnp.einsum("jka,ja->k", LX, c1)])


def _l21t_matvec(F: Factor, x2, data, lay):
    """L21' @ x2 -> (n1, q1)."""
    R21, LX = F.L21
    pat = data.pattern
    n1, q1 = F.L11.shape[0], F.L11.shape[1]
    xr, xb = x2[: lay.rz], x2[lay.rz :]
    out = jnp.einsum("jka,k->ja", LX, xb)
    if lay.rz == 0:
        return out
    if pat is not None:
        return out + jax.ops.segment_sum(R21 * xr[pat.row][:, None], pat.lev, n1)
    return out + (R21.T @ xr).reshape(n1, q1)


def solve(F: Factor, b: jnp.ndarray, data, lay) -> jnp.ndarray:
    """Solve (L L') x = b with the blocked factor."""
    n1, q1 = F.L11.shape[0], F.L11.shape[1]
    b1, b2 = b[: n1 * q1], b[n1 * q1 :]
    c1 = jnp.einsum("jab,jb->ja", F.L11inv, b1.reshape(n1, q1))
    if F.L22.shape[0] == 0:
        return jnp.einsum("jba,jb->ja", F.L11inv, c1).reshape(-1)
    c2 = jsl.solve_triangular(F.L22, b2 - _l21_matvec(F, c1, data, lay), lower=True)
    x2 = jsl.solve_triangular(F.L22.T, c2, lower=False)
    y1 = c1 - _l21t_matvec(F, x2, data, lay)
    x1 = jnp.einsum("jba,jb->ja", F.L11inv, y1).reshape(-1)
    return jnp.concatenate([x1, x2])


def dense_factor(F: Factor, data, lay) -> Factor:
    """The factor with a dense (r, n1 q1) L21 (for the results)."""
    R21, LX = F.L21
    n1, q1 = F.L11.shape[0], F.L11.shape[1]
    pat = data.pattern
    if lay.rz and pat is not None:
        cols = pat.lev[:, None] * q1 + jnp.arange(q1)[None, :]
        R21 = jnp.zeros((lay.rz, n1 * q1)).at[pat.row[:, None], cols].add(R21)
    LXd = LX.transpose(1, 0, 2).reshape(LX.shape[1], n1 * q1)
    return Factor(F.L11, F.L11inv, jnp.concatenate([R21.reshape(lay.rz, n1 * q1), LXd]), F.L22)
