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


#: Kinds of parameter maps, in the order of :class:`SpecTable`'s ``kind`` codes; "free"
#: holds nothing (the ML fit itself).
KINDS = ("sd", "cor", "sigma", "beta", "free")


class SpecTable(NamedTuple):
    """The parameters' maps as data (one row per parameter, then one "free" row), so one
    compiled program serves every parameter of a model with a handful of branches.

    Rows of T are given column by column, padded to the largest term: ``ri``/``rj`` hold
    flat positions in z (padding points at z's last entry, log sigma, with mask 0).
    """

    kind: np.ndarray  # (n+1,) index into KINDS
    ri: np.ndarray  # (n+1, qmax) row i positions (sd: its row; cor: the first row)
    mi: np.ndarray  # (n+1, qmax) mask of ri
    rj: np.ndarray  # (n+1, qmax) row j positions (cor: the second row)
    mj: np.ndarray  # (n+1, qmax)
    j: np.ndarray  # (n+1,) X column for beta


def spec_table(specs: Sequence[ParamSpec], m: int) -> SpecTable:
    """:class:`SpecTable` of the parameters (m = number of theta entries)."""
    qmax = max([len(r) for s in specs for r in s.rows] + [1])
    n = len(specs) + 1
    kind = np.full(n, KINDS.index("free"), np.int32)
    ri, rj = np.full((n, qmax), m, np.int32), np.full((n, qmax), m, np.int32)
    mi, mj = np.zeros((n, qmax)), np.zeros((n, qmax))
    jcol = np.zeros(n, np.int32)
    for k, s in enumerate(specs):
        kind[k] = KINDS.index(s.kind)
        for rows, mask, row in zip((ri, rj), (mi, mj), s.rows):
            rows[k, : len(row)] = row
            mask[k, : len(row)] = 1.0
        jcol[k] = max(s.j, 0)
    return SpecTable(kind, ri, mi, rj, mj, jcol)


def constrained(z: jnp.ndarray, v: jnp.ndarray, kind: int, ri, mi, rj, mj, m: int):
    """(theta, sigma^2, profile_sigma) on the set where a parameter of ``kind`` (a
    :data:`KINDS` name) equals ``v``; ``ri, mi, rj, mj`` as in :class:`SpecTable`.

    ``z[:m]`` are theta-like, ``z[m]`` is log sigma (unused where sigma is fixed or profiled):
      * sigma = v: theta = z[:m].
      * sd of row i = v: row i of T is (v / sigma) * unit(z_row) (its direction is free).
      * cor(i, j) = c: row j of T is y_perp + |y_perp| c / sqrt(1 - c^2) u_i, where u_i is
        row i's direction and y_perp the part of z's row j orthogonal to it.
      * beta_j = v, or "free": theta = z[:m], sigma profiled (for beta the caller shifts
        the response).
    """
    sigma2 = jnp.exp(2.0 * z[m])
    if kind == "sigma":
        return z[:m], v * v, False
    if kind in ("beta", "free"):
        return z[:m], sigma2, True
    if kind == "sd":
        row = (v / jnp.sqrt(sigma2)) * _unit(z[ri] * mi)
        return z.at[ri].set(jnp.where(mi > 0, row, z[ri]))[:m], sigma2, False
    u = _unit(z[ri] * mi)  # row i's direction, in row j's columns (zero beyond column i)
    y = z[rj] * mj
    yp = y - jnp.dot(y, u) * u
    c = jnp.clip(v, -CORMAX, CORMAX)
    row = yp + jnp.sqrt(jnp.sum(yp * yp)) * (c / jnp.sqrt(1.0 - c * c)) * u
    return z.at[rj].set(jnp.where(mj > 0, row, z[rj]))[:m], sigma2, False


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
