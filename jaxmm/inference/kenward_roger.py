"""Kenward-Roger inference for REML fits, as pbkrtest 0.5.2 computes it and lmerTest 3.1-3
reports it.

The variance components are pbkrtest's ``ggamma``: for each random-effects term the
lower-triangle entries (column-major, VarCorr's order) of its covariance matrix, then the
residual variance; Sigma = sum_i ggamma_i G_i is linear in them, so the second-derivative
term of Kenward and Roger (1997) vanishes. With Phi = vcov(beta),

    P_i   = -X'S^-1 G_i S^-1 X,        Q_ij = X'S^-1 G_i S^-1 G_j S^-1 X,
    I_ij  = tr(S^-1 G_i S^-1 G_j) - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j),
    W     = 2 I^-1                    (pseudo-inverse when I is near singular),
    Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j)] Phi,

and the denominator degrees of freedom of a test of L beta follow from
A1 = sum W_ij tr(u_i) tr(u_j), A2 = sum W_ij tr(u_i u_j), u_i = Theta Phi P_i Phi,
Theta = L'(L Phi L')^-1 L. All products are formed in random-effects space (see
``_kr_qspace``), never as n x n matrices.

Example:
    >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
    >>> st = kr_state(m)
    >>> r = kr_contrast(st, [1.0])
    >>> round(r.df, 6), round(r.std_error, 4)
    (5.0, 19.3834)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..errors import ModelError
from ..precision import compute
from . import _kr_qspace
from ._kr_qspace import selector_pairs
from .satterthwaite import f_pvalue, t_pvalue


__all__ = ["KRState", "KRTTest", "KRFTest", "kr_state", "kr_contrast", "kr_coef_table"]


class KRState(NamedTuple):
    """Everything Kenward-Roger needs, evaluated at the REML estimates.

    Attributes:
        beta: (p,) fixed effects.
        phi: (p, p) unadjusted vcov(beta).
        phi_adj: (p, p) adjusted vcov(beta) (pbkrtest's ``vcovAdj``).
        P: (m, p, p) P_i = -X'S^-1 G_i S^-1 X, one per variance component.
        Q: (m, m, p, p) Q_ij = X'S^-1 G_i S^-1 G_j S^-1 X.
        W: (m, m) asymptotic covariance of the variance components (2 x inverse information).
        info: (m, m) the REML information matrix times 2 (pbkrtest's ``IE2``).
        condi: smallest absolute eigenvalue of ``info`` (pseudo-inverse used below 1e-10).
        ggamma: (m,) the variance components, residual variance last.
        ggamma_names: their names (``Subject.(Intercept)``, ``Subject.Days.(Intercept)``, ``Residual``).
        x_names: names of the fixed effects.
        sigma: residual standard deviation.
    """

    beta: np.ndarray
    phi: np.ndarray
    phi_adj: np.ndarray
    P: np.ndarray
    Q: np.ndarray
    W: np.ndarray
    info: np.ndarray
    condi: float
    ggamma: np.ndarray
    ggamma_names: tuple[str, ...]
    x_names: tuple[str, ...]
    sigma: float


class KRTTest(NamedTuple):
    """A one-row contrast: lmerTest's ``contest1D(..., ddf="Kenward-Roger")``."""

    estimate: float
    std_error: float
    df: float
    t_value: float
    p_value: float


class KRFTest(NamedTuple):
    """A multi-row contrast: one row of lmerTest's ``anova(..., ddf="Kenward-Roger")``.

    ``f_value`` is the scaled statistic lmerTest prints (``f_scaling * f_unscaled``);
    ``sum_sq`` and ``mean_sq`` are lmerTest's, from the unscaled statistic.
    """

    f_value: float
    num_df: int
    den_df: float
    p_value: float
    f_unscaled: float
    f_scaling: float
    sum_sq: float
    mean_sq: float


def _components(fit) -> tuple[list, np.ndarray, list[str]]:
    pairs, values, names, offset = [], [], [], 0
    s2 = fit.sigma**2
    for t, T in zip(fit.terms, fit._Ts):
        cov = s2 * (T @ T.T)
        for b in range(t.q):
            for a in range(b, t.q):
                pairs.append(selector_pairs(offset, t.nlevels, t.q, a, b))
                values.append(cov[a, b])
                label = t.cnames[a] if a == b else f"{t.cnames[a]}.{t.cnames[b]}"
                names.append(f"{t.group}.{label}")
        offset += t.nlevels * t.q
    return pairs, np.array(values + [s2]), names + ["Residual"]


def kr_state(fit) -> KRState:
    """Kenward-Roger's adjusted covariance and df ingredients for a REML fit.

    Raises ModelError for an ML fit, or when the random effects are too many for the
    dense q x q pieces (``_kr_qspace.MAX_Q``).

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> st = kr_state(m)
        >>> st.ggamma_names
        ('Subject.(Intercept)', 'Subject.Days.(Intercept)', 'Subject.Days', 'Residual')
        >>> bool(np.allclose(st.phi_adj, st.phi))  # balanced: no adjustment here
        True
    """
    from ..results.guards import require_lmm

    require_lmm(fit, "Kenward-Roger")
    if not fit.reml:
        raise ModelError(
            "Kenward-Roger is defined for REML fits only: refit the model with reml=True"
        )
    X = np.asarray(fit.design.X, dtype=np.float64)
    _kr_qspace.check_size(sum(t.nlevels * t.q for t in fit.terms), X.shape[1])
    pairs, ggamma, names = _components(fit)
    with compute():
        pc = _kr_qspace.kr_pieces(X, fit.terms, fit._Ts, fit.sigma**2, pairs)
        phi = np.asarray(fit.vcov.to_numpy(), dtype=np.float64)
        PhiP = np.einsum("ab,ibc->iac", phi, pc.P)
        info = pc.K - 2.0 * np.einsum("ab,ijab->ij", phi, pc.Q) + np.einsum("iac,jca->ij", PhiP, PhiP)
        info = 0.5 * (info + info.T)
        condi = float(np.min(np.abs(np.linalg.eigvalsh(info))))
        if condi > 1e-10:
            W = 2.0 * np.linalg.inv(info)
        else:
            W = 2.0 * np.linalg.pinv(info, rcond=np.sqrt(np.finfo(float).eps))
        W = 0.5 * (W + W.T)
        m, p = W.shape[0], phi.shape[0]
        WPhiP = (W @ PhiP.reshape(m, -1)).reshape(m, p, p)  # sum_j W_ij Phi P_j
        U = np.einsum("ij,ijab->ab", W, pc.Q) - np.sum(pc.P @ WPhiP, axis=0)
        phi_adj = phi + 2.0 * phi @ U @ phi
        phi_adj = 0.5 * (phi_adj + phi_adj.T)
    return KRState(
        beta=np.asarray(fit.fixef.to_numpy(), dtype=np.float64), phi=phi, phi_adj=phi_adj,
        P=pc.P, Q=pc.Q, W=W, info=info, condi=condi, ggamma=ggamma, ggamma_names=tuple(names),
        x_names=tuple(fit.design.x_names), sigma=float(fit.sigma),
    )


def _a1_a2(state: KRState, L: np.ndarray) -> tuple[float, float]:
    phi = state.phi
    Theta = L.T @ np.linalg.solve(L @ phi @ L.T, L)
    u = (Theta @ phi)[None] @ state.P @ phi  # u_i = Theta Phi P_i Phi
    m = u.shape[0]
    tr = np.einsum("iaa->i", u)
    A1 = float(tr @ state.W @ tr)
    tr_uu = u.reshape(m, -1) @ u.transpose(0, 2, 1).reshape(m, -1).T  # tr(u_i u_j)
    A2 = float(np.sum(state.W * tr_uu))
    return A1, A2


def _div_zero(x: float, y: float, tol: float = 1e-14) -> float:
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def kr_ddf(A1: float, A2: float, q: int) -> tuple[float, float]:
    """Kenward-Roger's denominator df and F scaling from A1, A2 and the numerator df q
    (pbkrtest's ``Lb_ddf`` and ``.KR_adjust``).

    Example:
        >>> [round(v, 6) for v in kr_ddf(0.1, 0.1, 1)]  # one row: df = 2 / A, no scaling
        [20.0, 1.0]
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        A1, A2 = np.float64(A1), np.float64(A2)
        B = (A1 + 6.0 * A2) / (2.0 * q)
        g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
        den = 3.0 * q + 2.0 * (1.0 - g)
        c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
        V0, V1, V2 = 1.0 + c1 * B, 1.0 - c2 * B, 1.0 - c3 * B
        V0 = 0.0 if abs(V0) < 1e-10 else V0
        rho = _div_zero(1.0 - A2 / q, V1) ** 2 * V0 / V2 / q
        df2 = 4.0 + (q + 2) / (q * rho - 1.0)
        scaling = 1.0 if abs(df2 - 2.0) < 1e-2 else df2 * (1.0 - A2 / q) / (df2 - 2.0)
    return float(df2), float(scaling)


def _as_matrix(state: KRState, L) -> np.ndarray:
    L = np.asarray(L, dtype=np.float64)
    if L.ndim == 1:
        L = L[None, :]
    p = state.beta.shape[0]
    if L.ndim != 2 or L.shape[1] != p or L.shape[0] == 0:
        raise ModelError(
            f"the contrast matrix L must have {p} columns (one per fixed effect: "
            f"{', '.join(state.x_names)}) and at least one row; got shape {L.shape}"
        )
    if not np.all(np.isfinite(L)):
        raise ModelError("the contrast matrix L has non-finite entries")
    if not np.any(L):
        raise ModelError("the contrast matrix L is zero: there is nothing to test")
    return L


def kr_contrast(state: KRState, L, rhs=0.0) -> KRTTest | KRFTest:
    """Test L beta = rhs with Kenward-Roger's adjusted covariance and df.

    One row (or a vector): a t test as lmerTest's ``contest1D`` (Std. Error from Phi_A,
    df from pbkrtest's ``Lb_ddf``). Several rows: the F test lmerTest's ``contestMD`` /
    ``anova(..., ddf="Kenward-Roger")`` reports (pbkrtest's ``KRmodcomp``: scaled F,
    NumDF = rank of L, DenDF, p-value).

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> r = kr_contrast(kr_state(m), [0.0, 1.0])
        >>> round(r.df, 4), round(r.t_value, 3)
        (17.0, 6.771)
    """
    L = _as_matrix(state, L)
    rhs = np.broadcast_to(np.asarray(rhs, dtype=np.float64), (L.shape[0],))
    with compute():
        return _contrast(state, L, rhs)


def _contrast(state: KRState, L: np.ndarray, rhs: np.ndarray) -> KRTTest | KRFTest:
    if L.shape[0] == 1:
        est = float(L[0] @ state.beta)
        var = float(L[0] @ state.phi_adj @ L[0])
        A1, A2 = _a1_a2(state, L)
        df, _ = kr_ddf(A1, A2, 1)
        se = float(np.sqrt(var))
        t = float((est - rhs[0]) / se)
        return KRTTest(est, se, df, t, t_pvalue(t, df))
    betaH = np.zeros_like(state.beta) if np.all(rhs == 0) else np.linalg.pinv(L) @ rhs
    _, sv, Vt = np.linalg.svd(L, full_matrices=False)
    q = int(np.sum(sv > max(L.shape) * np.finfo(float).eps * sv[0]))
    if q < L.shape[0]:  # pbkrtest: replace L by an orthonormal basis of its rows
        L = Vt[:q]
    A1, A2 = _a1_a2(state, L)
    df, scaling = kr_ddf(A1, A2, q)
    d = L @ (state.beta - betaH)
    f_u = float(d @ np.linalg.solve(L @ state.phi_adj @ L.T, d)) / q
    f = float(scaling * f_u)
    ms = float(f_u * state.sigma**2)
    return KRFTest(f, q, df, f_pvalue(f, q, df), f_u, scaling, ms * q, ms)


def kr_coef_table(state: KRState) -> pd.DataFrame:
    """lmerTest's ``summary(m, ddf="Kenward-Roger")`` coefficient table.

    Example:
        >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> kr_coef_table(kr_state(m)).columns.tolist()
        ['Estimate', 'Std. Error', 'df', 't value', 'Pr(>|t|)']
    """
    p = len(state.beta)
    with compute():
        rows = [_contrast(state, np.eye(p)[k : k + 1], np.zeros(1)) for k in range(p)]
    return pd.DataFrame(
        [[r.estimate, r.std_error, r.df, r.t_value, r.p_value] for r in rows],
        index=list(state.x_names), columns=["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"],
    )
