"""Weighted log-diagonal of a dense Cholesky factor, with a cheap exact derivative.

The dense block arrives transposed (:func:`weighted_logchol_t`, :func:`chol_t`): its upper
triangle in row-major order is the lower triangle LAPACK reads in column-major order, so the
factorization takes it without a transposing copy, and every elementwise pass before and
after (the Schur update, the scaling by Lambda, their derivatives) runs in one row-major
layout. With the lower triangle given instead, XLA transposed the block several times per
evaluation (InstEval: ~20 ms of 75). :func:`weighted_logchol` takes the lower triangle
(GLMMs' small blocks) through the same code.

The profiled criterion needs only ``sum_i w_i log L_ii^2`` of the dense rest block's
Cholesky factor L (w = 1 on Z rows, 1 on X rows for REML, N on the y row whose squared
diagonal is the penalized residual sum of squares). Its derivative with respect to the
matrix is ``G = Linv' diag(w) Linv`` with ``Linv = L^{-1}``, since
``log L_ii^2 = log det S[:i+1, :i+1] - log det S[:i, :i]``. A ``custom_jvp`` (not
``custom_vjp``) keeps forward mode, hence ``jax.hessian``, working.

G costs a triangular inverse and a triangular product, each r^3/3 multiply-adds when the
triangles are exploited. Both are done by recursive halving into matrix products (what
LAPACK's trtri and lauum do), which XLA runs well on CPU and GPU: on a 1187-row block,
~21 ms (:func:`gram_inverse_upper`, every product in the fast ``A @ B`` / ``A @ B'`` forms)
instead of 55 ms for a triangular solve against the identity and 42 ms for the dense
product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

#: Below this size the recursions stop and call the triangular solve / product directly.
#: Larger leaves mean fewer, larger products: XLA builds a YNNPACK executable for each
#: product on its first run (~5 ms each), and InstEval's fitting program had 185 of them
#: with 148-row leaves (first run 1.09 s, warm 0.71 s) against 85 with ~300-row leaves
#: (0.87 s, 0.74 s; compile 3.4 -> 2.9 s).
LEAF = 400


def _chol(S):
    return jax.lax.linalg.cholesky(S, symmetrize_input=False)


def triu_inverse(R: jnp.ndarray, leaf: int = LEAF) -> jnp.ndarray:
    """Inverse of an upper-triangular matrix (its strict lower triangle is ignored):
    [[A, B], [0, C]]^{-1} = [[A^{-1}, -A^{-1} B C^{-1}], [0, C^{-1}]], recursively.

    Example:
        >>> import jax.numpy as jnp
        >>> [[float(v) for v in row] for row in triu_inverse(jnp.array([[2.0, 2.0], [0.0, 4.0]]))]
        [[0.5, -0.25], [0.0, 0.25]]
    """
    n = R.shape[0]
    if n <= leaf:
        return jsl.solve_triangular(R, jnp.eye(n, dtype=R.dtype), lower=False)
    h = n // 2
    Ai = triu_inverse(R[:h, :h], leaf)
    Ci = triu_inverse(R[h:, h:], leaf)
    X = -((Ai @ R[:h, h:]) @ Ci)
    bottom = jnp.concatenate([jnp.zeros((n - h, h), R.dtype), Ci], axis=1)
    return jnp.concatenate([jnp.concatenate([Ai, X], axis=1), bottom], axis=0)


def triu_gram(U: jnp.ndarray, leaf: int = LEAF) -> jnp.ndarray:
    """The upper triangle of U U' for upper-triangular U, recursively (the strictly lower
    blocks of the recursion are left zero): with U = [[A, B], [0, C]],
    U U' = [[A A' + B B', B C'], [C B', C C']]. Every product has the transposed operand
    on the right, which XLA's CPU matrix product runs at twice the speed of a transposed
    left operand (the ``M' M`` form of a lower-triangular recursion)."""
    n = U.shape[0]
    if n <= leaf:
        return U @ U.T
    h = n // 2
    A, B, C = U[:h, :h], U[:h, h:], U[h:, h:]
    top = jnp.concatenate([triu_gram(A, leaf) + B @ B.T, B @ C.T], axis=1)
    bottom = jnp.concatenate([jnp.zeros((n - h, h), U.dtype), triu_gram(C, leaf)], axis=1)
    return jnp.concatenate([top, bottom], axis=0)


def gram_inverse_upper(L: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """The upper triangle of ``L^{-T} diag(w) L^{-1}`` for lower-triangular L (w >= 0; the
    strict lower triangle is not computed): as ``U diag(w) U'`` with ``U = (L')^{-1}``,
    where L' is free (LAPACK's factor is column-major) and every product is fast
    (:func:`triu_gram`). InstEval's 1187 rows: 21 ms, where the same recursion over
    L^{-1} (products ``M' M``, twice as slow in XLA) took 30 ms."""
    U = triu_inverse(L.T) * jnp.sqrt(jnp.maximum(w, 0.0))[None, :]
    return triu_gram(U)


@jax.custom_jvp
def chol_t(St: jnp.ndarray) -> jnp.ndarray:
    """Lower Cholesky factor of S given ``St = S'`` (only St's upper triangle is read).

    Example:
        >>> import jax.numpy as jnp
        >>> St = jnp.array([[4.0, 2.0], [0.0, 3.0]])   # S = [[4, 2], [2, 3]], upper given
        >>> [[round(float(v), 4) for v in row] for row in chol_t(St)]
        [[2.0, 0.0], [1.0, 1.4142]]
    """
    return _chol(St.T)


@chol_t.defjvp
def _chol_t_jvp(primals, tangents):
    (St,), (dSt,) = primals, tangents
    dS = jnp.triu(dSt).T + jnp.triu(dSt, 1)
    L, dL = jax.jvp(_chol, (St.T,), (dS,))
    return L, jnp.tril(dL)


def _upper_gradient(G: jnp.ndarray) -> jnp.ndarray:
    """The derivative with respect to the upper triangle read: off-diagonal entries of the
    symmetric ``G`` count twice, the strict lower triangle not at all."""
    ii = jax.lax.broadcasted_iota(jnp.int32, G.shape, 0)
    jj = jax.lax.broadcasted_iota(jnp.int32, G.shape, 1)
    return jnp.where(ii < jj, 2.0 * G, jnp.where(ii == jj, G, 0.0))


@jax.custom_jvp
def weighted_logchol_t(St: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """:func:`weighted_logchol` of S given ``St = S'`` (only St's upper triangle is read).

    Example:
        >>> import jax.numpy as jnp
        >>> St = jnp.array([[4.0, 2.0], [0.0, 3.0]])
        >>> float(weighted_logchol_t(St, jnp.ones(2)))  # log det S = log 8
        2.079...
    """
    L = _chol(St.T)
    return jnp.sum(w * jnp.log(jnp.diagonal(L) ** 2))


@weighted_logchol_t.defjvp
def _weighted_logchol_t_jvp(primals, tangents):
    St, w = primals
    dSt, dw = tangents
    L = chol_t(St)
    logd2 = jnp.log(jnp.diagonal(L) ** 2)
    G = _upper_gradient(gram_inverse_upper(L, w))
    return jnp.sum(w * logd2), jnp.sum(G * dSt) + jnp.sum(logd2 * dw)


def weighted_logchol(S: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """``sum_i w_i log L_ii^2`` where ``L = cholesky(S)``; only S's lower triangle is read
    (:func:`weighted_logchol_t` of ``S'``, derivative included).

    Example:
        >>> import jax.numpy as jnp
        >>> S = jnp.array([[4.0, 2.0], [2.0, 3.0]])
        >>> float(weighted_logchol(S, jnp.ones(2)))  # log det S = log 8
        2.079...
    """
    return weighted_logchol_t(S.T, w)
