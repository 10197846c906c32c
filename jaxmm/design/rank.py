"""Drop aliased fixed-effect columns as lme4 does (``chkRank.drop.cols``).

lme4 keeps the columns of ``qr(X, tol = 1e-7)``'s leading pivots: R's LINPACK QR moves a
column whose residual norm falls below ``tol`` times its original norm to the end, so the
*earlier* of two aliased columns is kept. This reproduces that rule: QR without pivoting,
drop the first negligible column, repeat. A cheap Cholesky screen of ``X'X`` skips the QR
when every column is clearly independent (residual norm ratio above ``1e-5``).

Example:
    >>> import numpy as np
    >>> X = np.array([[1.0, 1, 2], [1, 2, 4], [1, 3, 6]])
    >>> independent_columns(X).tolist()
    [True, True, False]
"""

from __future__ import annotations

import numpy as np

__all__ = ["independent_columns", "RANK_TOL"]

RANK_TOL = 1e-7
_SCREEN = 1e-5  # residual/original norm ratio above which Gram-matrix rounding cannot matter


def _clearly_full_rank(X: np.ndarray) -> bool:
    """True if the Cholesky pivots of X'X show every column's residual norm ratio
    (after projecting out the earlier columns) above ``_SCREEN``."""
    G = X.T @ X
    d = np.diag(G).copy()
    if (d <= 0).any():
        return False
    s = 1.0 / np.sqrt(d)
    try:
        L = np.linalg.cholesky(G * s[:, None] * s[None, :])  # unit-diagonal correlation form
    except np.linalg.LinAlgError:
        return False
    return bool((np.diag(L) > _SCREEN).all())


def independent_columns(X: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Boolean mask of the columns lme4 would keep (all-zero columns are dropped)."""
    n, p = X.shape
    keep = np.ones(p, dtype=bool)
    if p == 0 or (p <= n and _clearly_full_rank(X)):
        return keep
    norms = np.sqrt(np.einsum("ij,ij->j", X, X))
    keep &= norms > 0
    while True:
        idx = np.flatnonzero(keep)
        if idx.size == 0:
            return keep
        R = np.linalg.qr(X[:, idx], mode="r")
        k = min(R.shape)
        bad = np.flatnonzero(np.abs(np.diag(R)[:k]) < tol * norms[idx[:k]])
        if bad.size:
            keep[idx[bad[0]]] = False
        elif idx.size > R.shape[0]:  # more columns than rows: the rest are dependent
            keep[idx[R.shape[0]]] = False
        else:
            return keep
