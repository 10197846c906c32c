"""The fixed-effects coefficient table with denominator degrees of freedom and p-values
(lmerTest's summary table), under Satterthwaite, Kenward-Roger, or lme4's (no df)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .anova import _ddf
from .satterthwaite import t_test


def coef_tests(fit, ddf: str = "Satterthwaite") -> pd.DataFrame:
    """Estimate, Std. Error, df, t value, Pr(>|t|) for every fixed effect.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> coef_tests(m).loc["Days", ["df", "t value"]].round(3).tolist()
        [17.0, 6.771]
    """
    method = _ddf(ddf)
    beta = fit.fixef.to_numpy()
    names = fit.fixef.index
    if method == "lme4":
        se = fit.stderr.to_numpy()
        return pd.DataFrame({"Estimate": beta, "Std. Error": se, "t value": beta / se}, index=names)
    eye = np.eye(beta.size)
    if method == "Satterthwaite":
        vp = fit._varpar
        rows = [t_test(vp, beta, eye[i]) for i in range(beta.size)]
    else:
        from .kenward_roger import kr_coef_table

        out = kr_coef_table(fit._kr_state)
        out.attrs["ddf"] = method
        return out
    out = pd.DataFrame([r[:4] for r in rows], index=names, columns=["Estimate", "Std. Error", "df", "t value"])
    out["Pr(>|t|)"] = [r.p for r in rows]
    out.attrs["ddf"] = method
    return out
