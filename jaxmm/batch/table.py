"""One row per fitted lane: criterion, sigma, beta, theta, lme4's sd/cor names, flags.

Columns: ``objective`` (REML criterion or ML deviance), ``sigma``, the fixed effects by
name, theta by lme4's names, the standard deviations and correlations by lme4's
``confint`` names (``sd_(Intercept)|Subject`` ...), then ``converged`` (the optimizer met
its gradient or no-decrease test with a finite criterion), ``singular`` (lme4's
isSingular: a diagonal of some T below 1e-4), ``status`` (0/1 converged, 2 iteration cap
reached, 3 non-finite), ``n_iter``, ``max_grad``, and the fixed effects' standard errors
``se_(Intercept)``, ``se_Days`` ... (sigma^2 (RX RX')^-1, as ``vcov``).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..covariance import Unstructured
from ..errors import ConvergenceWarning
from .params import theta_names, vc_columns


def _inv_all(RX: np.ndarray) -> np.ndarray:
    """Inverses of a batch of matrices; NaN for any that are singular or not finite."""
    ok = np.all(np.isfinite(RX), axis=(1, 2))
    out = np.full_like(RX, np.nan)
    try:
        out[ok] = np.linalg.inv(RX[ok])
    except np.linalg.LinAlgError:
        for b in np.flatnonzero(ok):
            try:
                out[b] = np.linalg.inv(RX[b])
            except np.linalg.LinAlgError:
                pass
    return out


def warn_unconverged(table: pd.DataFrame, what: str) -> None:
    """One ConvergenceWarning naming how many lanes failed and why (never an error)."""
    bad = ~table["converged"].to_numpy()
    if bad.any():
        capped = int((table["status"].to_numpy() == 2).sum())
        nonfinite = int((table["status"].to_numpy() == 3).sum())
        warnings.warn(
            f"{int(bad.sum())} of {len(table)} {what} did not converge ({capped} reached the "
            f"iteration cap, {nonfinite} non-finite criterion); see the table's 'converged' "
            "and 'status' columns", ConvergenceWarning, 3,
        )


def lane_table(lanes, terms, x_names, nobs: int, reml: bool, index=None) -> pd.DataFrame:
    """The DataFrame of a batch of :class:`jaxmm.batch.fit.LaneFit` results (NumPy leaves)."""
    p = len(x_names)
    theta = np.asarray(lanes.theta)
    sigma = np.sqrt(np.asarray(lanes.pwrss) / (nobs - (p if reml else 0)))
    cols: dict[str, np.ndarray] = {"objective": np.asarray(lanes.fun), "sigma": sigma}
    beta = np.asarray(lanes.beta)
    for k, nm in enumerate(x_names):
        cols[nm] = beta[:, k]
    for k, nm in enumerate(theta_names(terms)):
        cols[nm] = theta[:, k]
    cols.update(vc_columns(terms, theta, sigma))
    status = np.asarray(lanes.status)
    diag = np.concatenate([Unstructured(t.q).is_diag for t in terms])
    cols["converged"] = (status <= 1) & np.isfinite(cols["objective"])
    cols["singular"] = np.any(theta[:, diag] < 1e-4, axis=1)
    cols["status"] = status.astype(int)
    cols["n_iter"] = np.asarray(lanes.n_iter).astype(int)
    cols["max_grad"] = np.asarray(lanes.max_grad)
    with np.errstate(all="ignore"):
        Ri = _inv_all(np.asarray(lanes.RX))
        se = sigma[:, None] * np.sqrt(np.einsum("bij,bij->bj", Ri, Ri))
    for k, nm in enumerate(x_names):
        cols[f"se_{nm}"] = se[:, k]
    return pd.DataFrame(cols, index=index)
