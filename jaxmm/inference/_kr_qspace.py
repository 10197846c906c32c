"""Kenward-Roger's matrix pieces in random-effects (q) space, never n x n.

pbkrtest writes the marginal covariance of y as Sigma = sum_i gamma_i G_i: one G_i per
lower-triangle entry of each term's covariance matrix (G_i = Z E_i Z', E_i the symmetric
0/1 selector of that entry within every level) plus the identity for the residual
variance. Everything Kenward-Roger needs is a product of X, Z, Sigma^{-1} and the G_i;
with the Woodbury identity

    Sigma^{-1} = K / sigma^2,   K = I - Z Lam M^{-1} Lam' Z',   M = Lam' Z'Z Lam + I,

and U = [Z X], R = Lam'Z'U, the crossproducts follow from U'U and one Cholesky factor of M:
Lam'Z'K = M^{-1} Lam'Z', hence U'K^k U = U'U - sum_{j<=k} R' M^{-j} R, and
tr(K^2) = n - q + tr(M^{-2}). Each E_i is a list of
index pairs (alpha_s, beta_s) with E_i = sum_s e_alpha e_beta', so

    X'S^-1 G_i S^-1 X            = B[alpha_i]' B[beta_i]                (B = Z'S^-1 X)
    X'S^-1 G_i S^-1 G_j S^-1 X   = B[alpha_i]' C[beta_i, alpha_j] B[beta_j]  (C = Z'S^-1 Z)
    tr(G_i S^-1 G_j S^-1)        = sum(C[beta_i, alpha_j] * C[beta_j, alpha_i]')

Only dense (q + p) x (q + p) matrices are formed: refuse large q before allocating.

Example:
    >>> import numpy as np
    >>> alpha, beta = selector_pairs(offset=0, nlevels=2, q=2, a=1, b=0)
    >>> alpha.tolist(), beta.tolist()
    ([1, 3, 0, 2], [0, 2, 1, 3])
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..errors import ModelError

__all__ = ["MAX_Q", "selector_pairs", "KRPieces", "kr_pieces"]

#: Largest total number of random effects for which the dense q x q pieces are built.
MAX_Q = 5000

# Dense (q+p)^2 float64 matrices alive at the peak: U'U (then U'KU), R or Lc^-1 R, M^-1 R, M.
_N_DENSE = 4


class KRPieces(NamedTuple):
    """pbkrtest's P_i, Q_ij and the trace matrix, one index per variance component.

    Attributes:
        P: (m, p, p) P_i = -X' Sigma^-1 G_i Sigma^-1 X.
        Q: (m, m, p, p) Q_ij = X' Sigma^-1 G_i Sigma^-1 G_j Sigma^-1 X.
        K: (m, m) tr(G_i Sigma^-1 G_j Sigma^-1).
    """

    P: np.ndarray
    Q: np.ndarray
    K: np.ndarray


def selector_pairs(offset: int, nlevels: int, q: int, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs of the symmetric selector E of entry (a, b) of a term's covariance,
    repeated over its levels (columns ``offset + level * q + component``, lme4's order).

    Example:
        >>> [x.tolist() for x in selector_pairs(offset=4, nlevels=3, q=1, a=0, b=0)]
        [[4, 5, 6], [4, 5, 6]]
    """
    base = offset + np.arange(nlevels, dtype=np.int64) * q
    ia, ib = base + a, base + b
    if a == b:
        return ia, ia
    return np.concatenate([ia, ib]), np.concatenate([ib, ia])


def check_size(q: int, p: int) -> None:
    """Refuse, before allocating anything, a model whose dense q-space pieces are too big."""
    if q > MAX_Q:
        gib = _N_DENSE * 8.0 * (q + p) ** 2 / 2**30
        raise ModelError(
            f"Kenward-Roger needs dense matrices of size (q + p) = {q + p} squared "
            f"(q = {q} random effects; about {gib:.1f} GiB); the limit is q <= {MAX_Q}. "
            "Use Satterthwaite degrees of freedom for a model this large."
        )


def _z_matrix(terms: Sequence, n: int) -> sp.csr_matrix:
    rows, cols, vals, offset = [], [], [], 0
    for t in terms:
        qt = t.Xt.shape[1]
        idx = np.asarray(t.index, dtype=np.int64)
        for c in range(qt):
            rows.append(np.arange(n, dtype=np.int64))
            cols.append(offset + idx * qt + c)
            vals.append(np.asarray(t.Xt[:, c], dtype=np.float64))
        offset += t.nlevels * qt
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, offset)
    )


def _lambda_matrix(terms: Sequence, Ts: Sequence[np.ndarray]) -> sp.csr_matrix:
    return sp.block_diag(
        [sp.kron(sp.identity(t.nlevels), sp.csr_matrix(T)) for t, T in zip(terms, Ts)], format="csr"
    )


def kr_pieces(
    X: np.ndarray, terms: Sequence, Ts: Sequence[np.ndarray], sigma2: float,
    pairs: Sequence[tuple[np.ndarray, np.ndarray]],
) -> KRPieces:
    """P_i, Q_ij and tr(G_i S^-1 G_j S^-1) for the random-effects components ``pairs``
    (from :func:`selector_pairs`) followed by the residual variance (G = I).

    Args:
        X: (n, p) fixed-effects model matrix.
        terms: random-effects terms (``index``, ``Xt``, ``nlevels``), lme4's order.
        Ts: each term's relative covariance factor (Lambda = blockdiag(I_l kron T)).
        sigma2: residual variance.
        pairs: one (alpha, beta) index pair per variance component of the terms.

    Example:
        >>> import numpy as np, types
        >>> t = types.SimpleNamespace(index=np.array([0, 0, 1, 1]), Xt=np.ones((4, 1)), nlevels=2)
        >>> pc = kr_pieces(np.ones((4, 1)), [t], [np.eye(1)], 1.0, [selector_pairs(0, 2, 1, 0, 0)])
        >>> pc.K.round(4).tolist()
        [[0.8889, 0.4444], [0.4444, 2.2222]]
    """
    n, p = X.shape
    q = sum(t.nlevels * t.Xt.shape[1] for t in terms)
    check_size(q, p)
    Z = _z_matrix(terms, n)
    Lam = _lambda_matrix(terms, Ts)
    U = sp.hstack([Z, sp.csr_matrix(X)], format="csr")
    UtU = (U.T @ U).toarray()
    R = np.asarray(Lam.T @ UtU[:q, :])  # Lam' Z'U, q x (q+p)
    M = np.asarray((Lam.T @ R[:, :q].T).T)
    M[np.diag_indices(q)] += 1.0
    Lc = sla.cholesky(M, lower=True, overwrite_a=True)
    del M
    Wr = sla.solve_triangular(Lc, R, lower=True)  # Lc^-1 R
    del R
    G1 = UtU
    G1 -= Wr.T @ Wr  # U'KU = U'U - R'M^-1 R
    MiR = sla.solve_triangular(Lc, Wr, lower=True, trans="T")  # M^-1 R = Lam' Z'K U
    del Wr
    # U'K^2 U = U'KU - R'M^-2 R and U'K^3 U = U'K^2 U - R'M^-3 R; only their X columns
    # and the entries of Z'K^2 Z on the selectors' diagonals are needed.
    Mx = MiR[:, q:]
    G2x = G1[:, q:] - MiR.T @ Mx  # U'K^2 X
    X3 = G2x[q:] - Mx.T @ sla.cho_solve((Lc, True), Mx)  # X'K^3 X
    Minv = sla.lapack.dpotri(Lc, lower=1)[0]  # M^-1, lower triangle
    trK2 = n - q + 2.0 * np.sum(np.tril(Minv) ** 2) - np.sum(np.diag(Minv) ** 2)  # n - q + tr(M^-2)
    del Minv, Lc

    def zk2z_trace(alpha, beta):  # tr(E Z'K^2 Z) = sum_s (Z'K^2 Z)[beta_s, alpha_s]
        return float(np.sum(G1[beta, alpha]) - np.sum(MiR[:, beta] * MiR[:, alpha]))

    s2, s4, s6 = sigma2, sigma2**2, sigma2**3
    C1, B1 = G1[:q, :q], G1[:q, q:] / s2  # sigma^2 Z'S^-1 Z (a view), Z'S^-1 X
    B2 = G2x[:q] / s4  # Z'S^-2 X
    XS2X, XS3X = 0.5 * (G2x[q:] + G2x[q:].T) / s4, 0.5 * (X3 + X3.T) / s6

    m = len(pairs) + 1
    P = np.empty((m, p, p))
    Q = np.empty((m, m, p, p))
    K = np.empty((m, m))
    for i, (ai, bi) in enumerate(pairs):
        P[i] = -(B1[ai].T @ B1[bi])
        for j in range(i, len(pairs)):
            aj, bj = pairs[j]
            Cij = C1[np.ix_(bi, aj)] / s2
            Q[i, j] = B1[ai].T @ Cij @ B1[bj]
            Q[j, i] = Q[i, j].T
            K[i, j] = K[j, i] = float(np.sum(Cij * C1[np.ix_(bj, ai)].T)) / s2
        Q[i, -1] = B1[ai].T @ B2[bi]
        Q[-1, i] = Q[i, -1].T
        K[i, -1] = K[-1, i] = zk2z_trace(ai, bi) / s4
    P[-1] = -XS2X
    Q[-1, -1] = XS3X
    K[-1, -1] = trK2 / s4
    P = 0.5 * (P + P.transpose(0, 2, 1))
    return KRPieces(P=P, Q=Q, K=K)
