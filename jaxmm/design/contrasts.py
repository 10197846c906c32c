"""R's default contrasts: ``contr.treatment`` for factors, ``contr.poly`` for ordered
factors (the matrices; :mod:`jaxmm.design.materializer` hands them to formulaic).

Example:
    >>> contr_poly(3).round(6).tolist()
    [[-0.707107, 0.408248], [-0.0, -0.816497], [0.707107, 0.408248]]
    >>> poly_suffixes(5)
    ['.L', '.Q', '.C', '^4']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Contrast",
    "contr_poly",
    "contr_treatment",
    "poly_suffixes",
    "ORDERED_KEY",
]

ORDERED_KEY = "jaxmm_ordered"  # formulaic encoder-state flag: factor was ordered -> contr.poly


def contr_poly(n: int) -> np.ndarray:
    """R's ``contr.poly(n)``: orthonormal polynomial contrasts, shape (n, n - 1).

    Computed as R's ``make.poly``: centred powers of the scores 1..n, orthogonalised by
    QR, each column scaled to unit length (signs fixed so the leading coefficient of each
    polynomial is positive, as R's ``qr.qy(QR, diag(R))`` gives).

    Example:
        >>> contr_poly(2).round(6).tolist()
        [[-0.707107], [0.707107]]
    """
    if n < 2:
        raise ValueError("contrasts need at least 2 levels")
    scores = np.arange(1, n + 1, dtype=np.float64)
    y = scores - scores.mean()
    X = y[:, None] ** np.arange(n)[None, :]
    Q, R = np.linalg.qr(X)
    raw = Q * np.diag(R)[None, :]
    Z = raw / np.sqrt((raw**2).sum(axis=0))[None, :]
    return Z[:, 1:]


def contr_treatment(n: int) -> np.ndarray:
    """R's ``contr.treatment(n)``: indicators of levels 2..n, shape (n, n - 1).

    Example:
        >>> contr_treatment(3).tolist()
        [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    """
    return np.eye(n)[:, 1:]


def poly_suffixes(n: int) -> list[str]:
    """Column suffixes R gives ``contr.poly(n)``: ``.L .Q .C ^4 ^5 ...``."""
    return [{1: ".L", 2: ".Q", 3: ".C"}.get(d, f"^{d}") for d in range(1, n)]


@dataclass(frozen=True, eq=False)
class Contrast:
    """The contrasts R used for one factor of the fixed effects.

    Attributes:
        kind: ``"contr.treatment"`` or ``"contr.poly"``.
        levels: the factor's levels, in order.
        matrix: the (reduced-rank) contrast matrix, shape (levels, levels - 1).
        colnames: the column suffixes (``"B"``, ``".L"``, ``"^4"``).
    """

    kind: str
    levels: tuple[str, ...]
    matrix: np.ndarray
    colnames: tuple[str, ...]

    @classmethod
    def for_factor(cls, levels: Sequence[str], ordered: bool) -> Contrast:
        """R's default contrasts for a factor with these levels.

        Example:
            >>> Contrast.for_factor(["a", "b"], ordered=False).colnames
            ('b',)
        """
        n = len(levels)
        if ordered:
            return cls("contr.poly", tuple(levels), contr_poly(n), tuple(poly_suffixes(n)))
        return cls("contr.treatment", tuple(levels), contr_treatment(n), tuple(levels[1:]))
