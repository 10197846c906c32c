"""lme4's parameter names and values for bootstrap tables and intervals: ``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``, ``sigma``, then the fixed effects (the rows of lme4's
``confint``), computed from theta and sigma for many replicates at once (NumPy).

Example:
    >>> import numpy as np
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> vc = vc_columns(m.terms, m.theta_vector[None, :], np.array([m.sigma]))
    >>> list(vc), round(float(vc["sd_Days|Subject"][0]), 3)
    (['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject'], 5.922)
"""

from __future__ import annotations

import numpy as np

from ..covariance import Unstructured, tril_colmajor


def vc_names(terms) -> list[str]:
    """lme4's names of the variance parameters, in theta's order per term."""
    out = []
    for t in terms:
        rows, cols = tril_colmajor(t.q)
        for i, j in zip(rows, cols):
            out.append(f"sd_{t.cnames[i]}|{t.group}" if i == j else f"cor_{t.cnames[i]}.{t.cnames[j]}|{t.group}")
    return out


def theta_names(terms) -> list[str]:
    """lme4's theta names (``Subject.(Intercept)``, ``Subject.Days.(Intercept)``...)."""
    return [nm for t in terms for nm in Unstructured(t.q).names(t.group, t.cnames)]


def vc_columns(terms, theta: np.ndarray, sigma: np.ndarray) -> dict[str, np.ndarray]:
    """Standard deviations and correlations of every term for a batch (B, n_theta) of theta
    and (B,) of sigma, keyed by lme4's names (a zero standard deviation gives NaN
    correlations, as lme4)."""
    theta = np.atleast_2d(np.asarray(theta, float))
    sigma = np.asarray(sigma, float).reshape(-1)
    out: dict[str, np.ndarray] = {}
    names = iter(vc_names(terms))
    start = 0
    for t in terms:
        q = t.q
        rows, cols = tril_colmajor(q)
        T = np.zeros((theta.shape[0], q, q))
        T[:, rows, cols] = theta[:, start : start + rows.size]
        start += rows.size
        V = np.einsum("bik,bjk->bij", T, T)  # relative covariance T T'
        sd = np.sqrt(np.maximum(np.einsum("bii->bi", V), 0.0))
        for i, j in zip(rows, cols):
            nm = next(names)
            if i == j:
                out[nm] = sigma * sd[:, i]
            else:
                denom = sd[:, i] * sd[:, j]
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[nm] = np.where(denom > 0, V[:, i, j] / np.where(denom > 0, denom, 1.0), np.nan)
    return out
