"""The unstructured covariance of one random-effects term, parametrized as lme4 does.

A term with ``q`` columns has a lower-triangular relative covariance factor ``T`` (so that the
term's random effects for one level have covariance ``sigma**2 * T @ T.T``). Its parameters
``theta`` are the lower-triangle entries of ``T`` in column-major order (lme4's order):
for q = 2, ``theta = [T00, T10, T11]``. Diagonal entries are >= 0 at reported estimates;
the objective is even in the sign of each column of ``T``, so the optimizer works
unconstrained and signs are normalized afterwards (:meth:`Unstructured.normalize`).

Independent terms ``(x||g)`` are separate terms of this class with q = 1, as in lme4.

Example:
    >>> import numpy as np
    >>> cov = Unstructured(2)
    >>> cov.n_theta
    3
    >>> cov.T_numpy(np.array([1.0, 0.5, 2.0]))
    array([[1. , 0. ],
           [0.5, 2. ]])
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import jax.numpy as jnp
import numpy as np


def tril_colmajor(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the lower triangle of a q x q matrix, column-major."""
    rows, cols = [], []
    for j in range(q):
        for i in range(j, q):
            rows.append(i)
            cols.append(j)
    return np.asarray(rows, dtype=np.int32), np.asarray(cols, dtype=np.int32)


@dataclass(frozen=True)
class Unstructured:
    """General positive semi-definite q x q covariance (lme4's default for ``(x|g)``)."""

    q: int

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters, q(q+1)/2."""
        return self.q * (self.q + 1) // 2

    @cached_property
    def _idx(self) -> tuple[np.ndarray, np.ndarray]:
        return tril_colmajor(self.q)

    @property
    def is_diag(self) -> np.ndarray:
        """Boolean mask over theta: True for diagonal entries of T (lme4's lower bound 0)."""
        r, c = self._idx
        return r == c

    @property
    def lower(self) -> np.ndarray:
        """lme4's lower bounds: 0 on the diagonal, -inf elsewhere."""
        return np.where(self.is_diag, 0.0, -np.inf)

    def theta0(self) -> np.ndarray:
        """lme4's starting value: T = identity."""
        return self.is_diag.astype(np.float64)

    def T(self, theta: jnp.ndarray) -> jnp.ndarray:
        """Relative covariance factor T (lower triangular) from theta, in JAX."""
        r, c = self._idx
        return jnp.zeros((self.q, self.q), dtype=theta.dtype).at[r, c].set(theta)

    def T_numpy(self, theta: np.ndarray) -> np.ndarray:
        """Same as :meth:`T` in NumPy, for host-side results."""
        r, c = self._idx
        out = np.zeros((self.q, self.q))
        out[r, c] = theta
        return out

    def normalize(self, theta: np.ndarray) -> np.ndarray:
        """Flip the sign of each column of T whose diagonal is negative (same objective)."""
        T = self.T_numpy(theta)
        T = T * np.where(np.diag(T) < 0, -1.0, 1.0)[None, :]
        r, c = self._idx
        return T[r, c]

    def names(self, group: str, cnames: tuple[str, ...]) -> list[str]:
        """lme4's theta names: ``Subject.(Intercept)``, ``Subject.Days.(Intercept)``..."""
        r, c = self._idx
        return [
            f"{group}.{cnames[i]}" if i == j else f"{group}.{cnames[i]}.{cnames[j]}"
            for i, j in zip(r, c)
        ]

    def covariance(self, theta: np.ndarray, sigma: float) -> np.ndarray:
        """Covariance matrix sigma^2 T T' of one level's random effects."""
        T = self.T_numpy(theta)
        return sigma**2 * (T @ T.T)
