"""Satterthwaite's denominator degrees of freedom for t and F tests of fixed effects, with the
variance of each contrast differentiated exactly (see :mod:`jaxmm.inference.varpar`).

For a contrast l'beta with variance v(phi) = l' vcov(beta; phi) l over the variance parameters
phi = (theta, sigma): df = 2 v^2 / (g' A g), g = dv/dphi, A = asymptotic vcov(phi). A joint test
of k contrasts L beta = 0 is decomposed into the eigenvectors of L vcov(beta) L' (Fai and
Cornelius), as lmerTest does: F = mean of the squared t statistics, and its denominator df
from the df of each.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from .._lazy import lazy_module

from .varpar import VarPar

# scipy.special's t and F distribution functions (the ones scipy.stats calls): importing
# scipy.stats costs ~0.4 s, a fifth of a cold InstEval fit with its summary
special = lazy_module("scipy.special")


def t_pvalue(t: float, df: float) -> float:
    """Two-sided p-value of a t statistic with ``df`` degrees of freedom."""
    return float(2.0 * special.stdtr(df, -abs(t)))


def f_pvalue(F: float, q: float, ddf: float) -> float:
    """Upper-tail p-value of an F statistic with (q, ddf) degrees of freedom."""
    return float(special.fdtrc(q, ddf, F))

EPS = np.sqrt(np.finfo(float).eps)


class TTest(NamedTuple):
    """One contrast: estimate, standard error, df, t value, p value."""

    estimate: float
    se: float
    df: float
    t: float
    p: float


class FTest(NamedTuple):
    """A joint test: Sum Sq, Mean Sq, NumDF, DenDF, F value, p value (lmerTest's columns)."""

    sum_sq: float
    mean_sq: float
    num_df: int
    den_df: float
    F: float
    p: float


def _quad(l: np.ndarray, M: np.ndarray) -> float:
    return float(l @ M @ l)


def contrast_df(vp: VarPar, l: np.ndarray) -> tuple[float, float]:
    """Variance of ``l @ beta`` and its Satterthwaite degrees of freedom."""
    v = _quad(l, vp.vcov_beta)
    g = np.einsum("i,kij,j->k", l, vp.jac, l)
    denom = float(g @ vp.vcov @ g)
    df = 2.0 * v * v / denom if denom > 0 else np.inf
    return v, df


def t_test(vp: VarPar, beta: np.ndarray, l: np.ndarray, rhs: float = 0.0) -> TTest:
    """Satterthwaite t test of ``l @ beta == rhs``.

    Example:
        >>> from jaxmm.inference.varpar import varpar
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> r = t_test(varpar(m), m.fixef.to_numpy(), np.array([0.0, 1.0]))
        >>> round(r.df, 2), round(r.t, 3)
        (17.0, 6.771)
    """
    l = np.asarray(l, float)
    est = float(l @ beta)
    v, df = contrast_df(vp, l)
    se = np.sqrt(v)
    t = (est - rhs) / se
    p = t_pvalue(t, df)
    return TTest(est, float(se), float(df), float(t), p)


def _f_df(nu: np.ndarray) -> float:
    """Denominator df of the mean of independent squared t statistics with df ``nu``."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2.0)))
    return 2.0 * E / (E - nu.size)


def f_test(vp: VarPar, beta: np.ndarray, L: np.ndarray, sigma: float) -> FTest:
    """Satterthwaite F test of ``L @ beta == 0`` (L is k x p).

    Example:
        >>> from jaxmm.inference.varpar import varpar
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> r = f_test(varpar(m), m.fixef.to_numpy(), np.array([[0.0, 1.0]]), m.sigma)
        >>> round(r.F, 3), r.num_df
        (45.853, 1)
    """
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[0] == 0:
        return FTest(np.nan, np.nan, 0, np.nan, np.nan, np.nan)
    VL = L @ vp.vcov_beta @ L.T
    d, P = np.linalg.eigh(0.5 * (VL + VL.T))
    d, P = d[::-1], P[:, ::-1]
    pos = d > max(EPS * d[0], 0.0)
    q = int(pos.sum())
    if q == 0:
        return FTest(np.nan, np.nan, 0, np.nan, np.nan, np.nan)
    PL = P[:, :q].T @ L
    nu = np.array([contrast_df(vp, PL[m])[1] for m in range(q)])
    F = float(np.sum((PL @ beta) ** 2 / d[:q]) / q)
    ddf = _f_df(nu)
    ms = F * sigma**2
    return FTest(ms * q, ms, q, ddf, F, f_pvalue(F, q, ddf))
