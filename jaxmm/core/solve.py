"""Conditional estimates at a given theta: beta, the spherical random effects u, and the
pieces of the factorization that results and inference need (all pure JAX).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
from jax import ops

from .blocked import partial_factor
from .layout import Blocks, Layout
from .logchol import chol_t


class Estimates(NamedTuple):
    """Everything determined by theta (a pytree; vmap gives a batch of them).

    Attributes:
        beta: (p,) fixed effects.
        u1: (l1, q1) spherical random effects of term 1 (padded levels are zero).
        u_rest: (rz,) spherical random effects of the other terms (padding rows zero).
        pwrss: penalized weighted residual sum of squares.
        ldL2: log det(Lambda'Z'Z Lambda + I).
        ldRX2: log det(RX RX').
        RX: (p, p) lower Cholesky factor of the fixed-effects block (vcov = sigma^2 RX^-T RX^-1).
        L22: (r, r) dense Cholesky factor of the rest block's Schur complement.
        L11: (l1, q1, q1) term 1's Cholesky factors.
    """

    beta: jnp.ndarray
    u1: jnp.ndarray
    u_rest: jnp.ndarray
    pwrss: jnp.ndarray
    ldL2: jnp.ndarray
    ldRX2: jnp.ndarray
    RX: jnp.ndarray
    L22: jnp.ndarray
    L11: jnp.ndarray


def estimates(theta: jnp.ndarray, blocks: Blocks, layout: Layout, beta=None,
              batched: bool = False) -> Estimates:
    """Solve the penalized least-squares problem at ``theta`` (lme4's PLS step).

    With ``beta`` given, the random effects are the conditional modes given that beta
    (``Estimates.beta`` is then that beta; pwrss, ldRX2 and RX stay those at beta-hat).
    ``batched``: vmapped over many fits (see :func:`jaxmm.core.blocked.partial_factor`).
    """
    part = partial_factor(theta, blocks, layout, batched)
    rz, p = layout.rz, layout.p
    L = jnp.tril(chol_t(part.St))  # reads St's upper triangle; tangent symmetrized
    if beta is None:
        x = jsl.solve_triangular(L[:-1, :-1].T, L[-1, :-1], lower=False)
        u_rest, beta = x[:rz], x[rz:]
    else:  # the Z rows of L' x = l_y: Lzz' u + Lxz' beta = l_yz
        beta = jnp.asarray(beta, L.dtype)
        rhs_z = L[-1, :rz] - L[rz : rz + p, :rz].T @ beta
        u_rest = jsl.solve_triangular(L[:rz, :rz].T, rhs_z, lower=False) if rz else rhs_z
    # b_rest = Lambda_rest u_rest, then term 1's modes given the rest and beta:
    # M_j u1_j = T1' (Z1'y - Z1'X beta - Z1'Z_rest b_rest)_j
    b_rest = _lambda_rest(u_rest, part.Ts[1:], layout)
    rhs = blocks.C1[:, :, -1] - jnp.einsum("jck,k->jc", blocks.C1[:, :, :-1], beta)
    if blocks.el_row.shape[0]:
        rhs = rhs - ops.segment_sum(
            blocks.el_B * b_rest[blocks.el_row][:, None], blocks.el_j, num_segments=layout.l1
        )
    T1 = part.Ts[0]
    v = jnp.einsum("ba,jb->ja", T1, rhs)
    v = jsl.solve_triangular(part.L11, v[..., None], lower=True)
    u1 = jsl.solve_triangular(jnp.swapaxes(part.L11, -1, -2), v, lower=False)[..., 0]
    d = jnp.log(jnp.diagonal(L) ** 2)
    return Estimates(
        beta=beta,
        u1=u1,
        u_rest=u_rest,
        pwrss=L[-1, -1] ** 2,
        ldL2=part.logdet1 + jnp.sum(d[:rz]),
        ldRX2=jnp.sum(d[rz : rz + p]),
        RX=L[rz : rz + p, rz : rz + p],
        L22=L,
        L11=part.L11,
    )


def _lambda_rest(u_rest, Ts_rest, layout: Layout):
    parts, end = [], 0
    for term, T in zip(layout.rest, Ts_rest):
        blk = u_rest[term.offset : term.offset + term.nlevels * term.q].reshape(term.nlevels, term.q)
        parts.append((blk @ T.T).reshape(-1))
        end = term.offset + term.nlevels * term.q
    parts.append(jnp.zeros(u_rest.shape[0] - end, u_rest.dtype))
    return jnp.concatenate(parts)


estimates_jit = partial(jax.jit, static_argnames=("layout",))(estimates)
