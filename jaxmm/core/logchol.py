"""Weighted log-diagonal of a dense Cholesky factor, with a cheap exact derivative.

The profiled criterion needs only ``sum_i w_i log L_ii^2`` of the dense rest block's
Cholesky factor L (w = 1 on Z rows, 1 on X rows for REML, N on the y row whose squared
diagonal is the penalized residual sum of squares). Its derivative with respect to the
matrix is ``Linv' diag(w) Linv`` with ``Linv = L^{-1}``, since
``log L_ii^2 = log det S[:i+1, :i+1] - log det S[:i, :i]``. One triangular inverse and one
product replace the two full triangular solves of the generic Cholesky rule, and a
``custom_jvp`` (not ``custom_vjp``) keeps forward mode, hence ``jax.hessian``, working.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl


@jax.custom_jvp
def weighted_logchol(S: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """``sum_i w_i log L_ii^2`` where ``L = cholesky(S)``; only S's lower triangle is read.

    Example:
        >>> import jax.numpy as jnp
        >>> S = jnp.array([[4.0, 2.0], [2.0, 3.0]])
        >>> float(weighted_logchol(S, jnp.ones(2)))  # log det S = log 8
        2.079...
    """
    L = _chol(S)
    return jnp.sum(w * jnp.log(jnp.diagonal(L) ** 2))


def _chol(S):
    return jax.lax.linalg.cholesky(S, symmetrize_input=False)


@weighted_logchol.defjvp
def _weighted_logchol_jvp(primals, tangents):
    S, w = primals
    dS, dw = tangents
    # Rebuild the symmetric matrix from the lower triangle so that differentiating this rule
    # again (forward over reverse: jax.hessian) sees symmetric perturbations.
    L = _chol(jnp.tril(S) + jnp.tril(S, -1).T)
    logd2 = jnp.log(jnp.diagonal(L) ** 2)
    Linv = jsl.solve_triangular(L, jnp.eye(S.shape[0], dtype=S.dtype), lower=True)
    G = Linv.T @ (w[:, None] * Linv)
    # f reads only the lower triangle of S: off-diagonal entries count twice.
    G = jnp.tril(2.0 * G) - jnp.diag(jnp.diagonal(G))
    out = jnp.sum(w * logd2)
    return out, jnp.sum(G * dS) + jnp.sum(logd2 * dw)
