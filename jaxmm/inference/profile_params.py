"""The parameters a likelihood profile runs over, named and ordered as lme4's ``confint``.

Variance parameters are on lme4's standard-deviation/correlation scale: per random-effects
term, in theta's (column-major lower-triangle) order, ``sd_<col>|<group>`` for a diagonal
entry and ``cor_<row col>.<col col>|<group>`` below it; then ``sigma``; then the fixed
effects. Each parameter gets a constrained parametrization (see
:mod:`jaxmm.inference.profile_solve`): a free vector ``z`` of length ``n_theta + 1``
(theta-like entries, then log sigma) that maps, for any value ``v`` of the profiled
parameter, onto exactly the set of (theta, sigma) where that parameter equals ``v``.

Example:
    >>> specs = param_specs([("Subject", ("(Intercept)", "Days"))], ["(Intercept)", "Days"])
    >>> [s.name for s in specs]
    ['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma', '(Intercept)', 'Days']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from ..covariance import tril_colmajor

#: Correlations are profiled inside (-CORMAX, CORMAX): at exactly +-1 the map degenerates.
CORMAX = 1.0 - 1e-9


class ParamSpec(NamedTuple):
    """One profiled parameter (hashable: part of the jit cache key).

    Attributes:
        name: lme4's name (``sd_Days|Subject``, ``sigma``, ``Days`` ...).
        kind: "sd", "cor", "sigma" or "beta".
        rows: theta positions of the rows involved: (row,) for sd, (row_i, row_j) for a
            correlation between rows i < j; each row a tuple of flat theta indices
            (columns 0..row of T, in order). Empty for sigma and beta.
        j: column of X for "beta" (else -1).
        lower, upper: the parameter's range (0/inf for sd and sigma, -1/1 for cor).
    """

    name: str
    kind: str
    rows: tuple = ()
    j: int = -1
    lower: float = -np.inf
    upper: float = np.inf


def _row_positions(offset: int, q: int) -> list[tuple[int, ...]]:
    r, c = tril_colmajor(q)
    pos = {(int(a), int(b)): offset + k for k, (a, b) in enumerate(zip(r, c))}
    return [tuple(pos[(i, cc)] for cc in range(i + 1)) for i in range(q)]


def param_specs(terms: Sequence[tuple[str, Sequence[str]]], x_names: Sequence[str]) -> list[ParamSpec]:
    """All profiled parameters of a model, in lme4's order.

    Args:
        terms: (group, column names) of each random-effects term, lme4's order.
        x_names: fixed-effects names.
    """
    out, offset = [], 0
    for group, cnames in terms:
        q = len(cnames)
        rows = _row_positions(offset, q)
        r, c = tril_colmajor(q)
        for a, b in zip(r, c):
            a, b = int(a), int(b)
            if a == b:
                out.append(ParamSpec(f"sd_{cnames[a]}|{group}", "sd", (rows[a],), lower=0.0))
            else:
                out.append(ParamSpec(f"cor_{cnames[a]}.{cnames[b]}|{group}", "cor", (rows[b], rows[a]),
                                     lower=-1.0, upper=1.0))
        offset += q * (q + 1) // 2
    out.append(ParamSpec("sigma", "sigma", lower=0.0))
    out += [ParamSpec(name, "beta", j=j) for j, name in enumerate(x_names)]
    return out


def _unit(x: jnp.ndarray) -> jnp.ndarray:
    return x / jnp.sqrt(jnp.sum(x * x))


def constrained(z: jnp.ndarray, v: jnp.ndarray, spec: ParamSpec, m: int):
    """(theta, sigma^2, profile_sigma) on the set where ``spec``'s parameter equals ``v``.

    ``z[:m]`` are theta-like, ``z[m]`` is log sigma (unused where sigma is fixed or profiled):
      * sigma = v: theta = z[:m].
      * sd of row i = v: row i of T is (v / sigma) * unit(z_row) (its direction is free).
      * cor(i, j) = c: row j of T is y_perp + |y_perp| c / sqrt(1 - c^2) u_i, where u_i is
        row i's direction and y_perp the part of z's row j orthogonal to it.
      * beta_j = v: theta = z[:m], sigma profiled (the caller shifts the response).
    """
    theta = z[:m]
    sigma2 = jnp.exp(2.0 * z[m])
    if spec.kind == "sigma":
        return theta, v * v, False
    if spec.kind == "beta":
        return theta, sigma2, True
    if spec.kind == "sd":
        idx = np.asarray(spec.rows[0])
        row = (v / jnp.sqrt(sigma2)) * _unit(theta[idx])
        return theta.at[idx].set(row), sigma2, False
    # correlation between rows i < j
    ii, jj = np.asarray(spec.rows[0]), np.asarray(spec.rows[1])
    u = jnp.concatenate([_unit(theta[ii]), jnp.zeros(jj.size - ii.size, theta.dtype)])
    y = theta[jj]
    yp = y - jnp.dot(y, u) * u
    c = jnp.clip(v, -CORMAX, CORMAX)
    row = yp + jnp.sqrt(jnp.sum(yp * yp)) * (c / jnp.sqrt(1.0 - c * c)) * u
    return theta.at[jj].set(row), sigma2, False


def initial_z(theta: np.ndarray, sigma: float, spec: ParamSpec) -> np.ndarray:
    """A free vector reproducing (theta, sigma) under ``spec``'s map (rows kept away from 0)."""
    z = np.append(np.asarray(theta, float), np.log(sigma))
    if spec.kind == "sd":
        idx = np.asarray(spec.rows[0])
        if not np.any(z[idx] != 0):
            z[idx[-1]] = 1.0
    elif spec.kind == "cor":
        ii, jj = np.asarray(spec.rows[0]), np.asarray(spec.rows[1])
        if not np.any(z[ii] != 0):
            z[ii[-1]] = 1.0
        u = np.zeros(jj.size)
        u[: ii.size] = z[ii] / np.linalg.norm(z[ii])
        yp = z[jj] - np.dot(z[jj], u) * u
        if np.linalg.norm(yp) < 1e-8 * max(1.0, np.linalg.norm(z[jj])):
            z[jj[-1]] += 1e-3 * max(1.0, np.linalg.norm(z[jj]))
    return z


def lme4_scale(theta: np.ndarray, sigma: float, beta: np.ndarray, qs: Sequence[int]) -> np.ndarray:
    """(theta, sigma, beta) -> lme4's profile parameters: sd/cor per term, sigma, beta.

    Example:
        >>> lme4_scale(np.array([1.0, 0.0, 2.0]), 3.0, np.array([5.0]), [2]).tolist()
        [3.0, 0.0, 6.0, 3.0, 5.0]
    """
    out, start = [], 0
    for q in qs:
        k = q * (q + 1) // 2
        r, c = tril_colmajor(q)
        T = np.zeros((q, q))
        T[r, c] = theta[start:start + k]
        S = T @ T.T
        sd = np.sqrt(np.diag(S))
        for a, b in zip(r, c):
            if a == b:
                out.append(sigma * sd[a])
            else:
                den = sd[a] * sd[b]
                out.append(S[a, b] / den if den > 0 else np.nan)
        start += k
    return np.concatenate([out, [sigma], beta])
