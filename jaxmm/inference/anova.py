"""F tests of the fixed-effects terms of one model: lmerTest's ``anova(fit, type, ddf)``
(type I or III hypotheses, Satterthwaite or Kenward-Roger denominator df) and lme4's own
sequential table (``ddf="lme4"``: no denominator df).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ModelError
from .hypotheses import type1, type3
from .satterthwaite import FTest, f_test
from .table import AnovaTable, with_heading
from .terms import fixed_terms

DDF = {"satterthwaite": "Satterthwaite", "kenward-roger": "Kenward-Roger", "kr": "Kenward-Roger",
       "lme4": "lme4"}
TYPES = {1: 1, 3: 3, "1": 1, "3": 3, "I": 1, "III": 3}
F_COLUMNS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def _ddf(ddf: str) -> str:
    key = str(ddf).lower()
    if key not in DDF:
        raise ModelError(f"ddf={ddf!r} is not known: use 'Satterthwaite', 'Kenward-Roger' or 'lme4'")
    return DDF[key]


def _type(type) -> int:
    if type not in TYPES:
        raise ModelError(f"type={type!r} is not supported: use 1 (sequential) or 3 (marginal, SAS)")
    return TYPES[type]


def hypotheses(fit, type=3) -> dict[str, np.ndarray]:
    """The contrast matrix L (rows: hypotheses, columns: coefficients) of each term.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> hypotheses(m)["Days"].tolist()
        [[0.0, 1.0]]
    """
    _, terms = fixed_terms(fit.design)
    return type1(fit.design.X, terms) if _type(type) == 1 else type3(fit.design)


def lme4_anova(fit) -> AnovaTable:
    """lme4's ``anova(fit)``: sequential sums of squares from RX'beta, F = Mean Sq / sigma^2.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> round(float(lme4_anova(m).loc["Days", "F value"]), 3)
        45.853
    """
    from ..results.guards import require_lmm

    require_lmm(fit, "lme4_anova")
    _, terms = fixed_terms(fit.design)
    ss = (np.asarray(fit._est.RX).T @ fit.fixef.to_numpy()) ** 2
    rows = []
    for t in terms:
        s = float(ss[list(t.columns)].sum())
        k = len(t.columns)
        rows.append({"npar": k, "Sum Sq": s, "Mean Sq": s / k, "F value": s / k / fit.sigma**2})
    out = pd.DataFrame(rows, index=pd.Index([t.label for t in terms], name="term"),
                       columns=["npar", "Sum Sq", "Mean Sq", "F value"])
    return with_heading(out, "Analysis of Variance Table")


def _kr_f_test(fit, L: np.ndarray) -> FTest:
    """Kenward-Roger's F test of one term, in lmerTest's columns (a single row is the
    squared t test; its F scaling is 1)."""
    from .kenward_roger import KRTTest, kr_contrast

    if L.shape[0] == 0:
        return FTest(np.nan, np.nan, 0, np.nan, np.nan, np.nan)
    r = kr_contrast(fit._kr_state, L)
    if isinstance(r, KRTTest):
        F = r.t_value**2
        return FTest(F * fit.sigma**2, F * fit.sigma**2, 1, r.df, F, r.p_value)
    return FTest(r.sum_sq, r.mean_sq, r.num_df, r.den_df, r.f_value, r.p_value)


def anova_table(fit, type=3, ddf: str = "Satterthwaite") -> AnovaTable:
    """F tests per fixed-effects term (lmerTest's ``anova``).

    Args:
        type: 3 (default; SAS type III) or 1 (sequential).
        ddf: "Satterthwaite" (default), "Kenward-Roger" (REML fits), or "lme4" (lme4's table,
            without denominator df; ``type`` is then ignored, lme4's table is sequential).

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> t = anova_table(m)
        >>> round(float(t.loc["Days", "DenDF"]), 2), round(float(t.loc["Days", "F value"]), 3)
        (17.0, 45.853)
    """
    from ..results.guards import require_lmm

    require_lmm(fit, "anova")
    method = _ddf(ddf)
    if method == "lme4":
        return lme4_anova(fit)
    kind = _type(type)
    Ls = hypotheses(fit, kind)
    beta = fit.fixef.to_numpy()
    rows: dict[str, FTest] = {}
    if method == "Satterthwaite":
        vp = fit._varpar
        for label, L in Ls.items():
            rows[label] = f_test(vp, beta, L, fit.sigma)
    else:
        for label, L in Ls.items():
            rows[label] = _kr_f_test(fit, L)
    out = pd.DataFrame([list(r) for r in rows.values()], index=pd.Index(list(rows), name="term"),
                       columns=F_COLUMNS)
    out["NumDF"] = out["NumDF"].astype(int)
    roman = {1: "I", 3: "III"}[kind]
    return with_heading(out, f"Type {roman} Analysis of Variance Table with {method}'s method")
