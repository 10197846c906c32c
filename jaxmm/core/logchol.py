"""Weighted log-diagonal of a dense Cholesky factor, with a cheap exact derivative.

The profiled criterion needs only ``sum_i w_i log L_ii^2`` of the dense rest block's
Cholesky factor L (w = 1 on Z rows, 1 on X rows for REML, N on the y row whose squared
diagonal is the penalized residual sum of squares). Its derivative with respect to the
matrix is ``G = Linv' diag(w) Linv`` with ``Linv = L^{-1}``, since
``log L_ii^2 = log det S[:i+1, :i+1] - log det S[:i, :i]``. A ``custom_jvp`` (not
``custom_vjp``) keeps forward mode, hence ``jax.hessian``, working.

G costs a triangular inverse and a triangular product. For large blocks on the CPU these
two run as LAPACK's ``trtri`` and ``lauum`` (r^3/3 flops each) through a host callback —
about half the time of the generic triangular solve and matrix product; their derivative
(used only by the Hessian) is that of the same formula in JAX operations.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import scipy.linalg.lapack as lapack

#: Dense blocks at least this large use LAPACK through a host callback on the CPU.
LAPACK_MIN_SIZE = 256


def _chol(S):
    return jax.lax.linalg.cholesky(S, symmetrize_input=False)


def _gram_jnp(L: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    Linv = jsl.solve_triangular(L, jnp.eye(L.shape[0], dtype=L.dtype), lower=True)
    return Linv.T @ (w[:, None] * Linv)


def _gram_host(L: np.ndarray, w: np.ndarray) -> np.ndarray:
    """LAPACK trtri + lauum; only the lower triangle of the result is meaningful."""
    Linv, info = lapack.dtrtri(L, lower=1, overwrite_c=0)
    if info != 0:  # singular factor: let the caller see non-finite values
        Linv = np.full(L.shape, np.nan)
    Linv *= np.sqrt(np.maximum(w, 0.0))[:, None]  # lauum reads the lower triangle only
    G, _ = lapack.dlauum(Linv, lower=1, overwrite_c=1)
    # Returned as raw bytes: the callback thread does not see the caller's scoped float64
    # setting and would otherwise downcast the result to float32.
    G = np.ascontiguousarray(G)
    return G.view(np.uint8).reshape(G.shape + (8,))


@jax.custom_jvp
def gram_inverse(L: jnp.ndarray, w: jnp.ndarray) -> jnp.ndarray:
    """``L^{-T} diag(w) L^{-1}`` for lower-triangular L (w >= 0); lower triangle valid."""
    use_host = (
        L.shape[0] >= LAPACK_MIN_SIZE and L.dtype == jnp.float64 and jax.default_backend() == "cpu"
    )
    if not use_host:
        return _gram_jnp(L, w)
    shape = jax.ShapeDtypeStruct(L.shape + (8,), jnp.uint8)
    raw = jax.pure_callback(_gram_host, shape, L, w, vmap_method="sequential")
    return jax.lax.bitcast_convert_type(raw, jnp.float64)


@gram_inverse.defjvp
def _gram_inverse_jvp(primals, tangents):
    L, w = primals
    out = gram_inverse(L, w)
    _, dout = jax.jvp(_gram_jnp, (L, w), tangents)
    return out, dout


@jax.custom_jvp
def chol_lower(S: jnp.ndarray) -> jnp.ndarray:
    """Cholesky factor reading only S's lower triangle (its strict upper triangle is not
    zeroed); its tangent is symmetrized to match."""
    return _chol(S)


@chol_lower.defjvp
def _chol_lower_jvp(primals, tangents):
    (S,), (dS,) = primals, tangents
    dS = jnp.tril(dS) + jnp.tril(dS, -1).T
    L, dL = jax.jvp(_chol, (S,), (dS,))
    return L, jnp.tril(dL)


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


@weighted_logchol.defjvp
def _weighted_logchol_jvp(primals, tangents):
    S, w = primals
    dS, dw = tangents
    L = chol_lower(S)
    logd2 = jnp.log(jnp.diagonal(L) ** 2)
    G = gram_inverse(L, w)
    # f reads only the lower triangle of S: off-diagonal entries count twice.
    ii = jax.lax.broadcasted_iota(jnp.int32, G.shape, 0)
    jj = jax.lax.broadcasted_iota(jnp.int32, G.shape, 1)
    G = jnp.where(ii > jj, 2.0 * G, jnp.where(ii == jj, G, 0.0))
    out = jnp.sum(w * logd2)
    return out, jnp.sum(G * dS) + jnp.sum(logd2 * dw)
