"""Variance components as lme4's ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor."""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_labels(groups: list[str]) -> list[str]:
    """lme4's VarCorr labels: a grouping factor's second term is ``g.1``, its third ``g.2``."""
    seen: dict[str, int] = {}
    out = []
    for g in groups:
        k = seen.get(g, 0)
        out.append(g if k == 0 else f"{g}.{k}")
        seen[g] = k + 1
    return out


def varcorr_frame(groups, cnames, covs, sigma: float) -> pd.DataFrame:
    """One row per variance, then per covariance of each term, then the residual.

    Args:
        groups: grouping factor name of each term (lme4 order).
        cnames: column names of each term.
        covs: covariance matrix (q x q) of each term's random effects.
        sigma: residual standard deviation.
    """
    rows = []
    for grp, names, V in zip(group_labels(list(groups)), cnames, covs):
        sd = np.sqrt(np.maximum(np.diag(V), 0.0))
        for i, name in enumerate(names):
            rows.append((grp, name, None, V[i, i], sd[i]))
        for i in range(len(names)):
            for j in range(i + 1, len(names)):
                denom = sd[i] * sd[j]
                cor = V[i, j] / denom if denom > 0 else np.nan
                rows.append((grp, names[i], names[j], V[i, j], cor))
    rows.append(("Residual", None, None, sigma**2, sigma))
    out = pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
    for c in ("var1", "var2"):  # one missing marker (NaN), as R's NA, whatever the rows
        out[c] = out[c].astype(object).where(out[c].notna(), np.nan)
    return out
