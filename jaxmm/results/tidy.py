"""Tidy tables as R's broom.mixed: ``tidy`` (one row per parameter) and ``glance`` (one row
per model)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from .._lazy import lazy_module

from .varcorr import group_labels

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)

TIDY_COLUMNS = ["effect", "group", "term", "estimate", "std.error", "statistic", "df", "p.value"]


def ran_pars(fit) -> pd.DataFrame:
    """Variance components in broom.mixed's spelling: ``sd__(Intercept)``,
    ``cor__(Intercept).Days``, and the residual ``sd__Observation``; the column ``parm`` holds
    lme4's confint name of the same parameter (``sd_(Intercept)|Subject``, ``sigma``).

    Example:
        >>> ran_pars(m)[["group", "term", "parm"]].values.tolist()[-2:]
        [['Subject', 'cor__(Intercept).Days', 'cor_Days.(Intercept)|Subject'], ['Residual', 'sd__Observation', 'sigma']]
    """
    rows = []
    vc = fit.varcorr()
    for grp, t in zip(group_labels([t.group for t in fit.terms]), fit.terms):
        sub = vc[vc.grp == grp]
        for _, r in sub.iterrows():
            if pd.isna(r.var2):
                term, parm = f"sd__{r.var1}", f"sd_{r.var1}|{t.group}"
            else:
                term, parm = f"cor__{r.var1}.{r.var2}", f"cor_{r.var2}.{r.var1}|{t.group}"
            rows.append(("ran_pars", grp, term, float(r.sdcor), parm))
    rows.append(("ran_pars", "Residual", "sd__Observation", float(fit.sigma), "sigma"))
    return pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "parm"])


def tidy(fit, effects=("fixed", "ran_pars"), conf_int: bool = False, conf_level: float = 0.95,
         ddf: str = "Satterthwaite", conf_method: str = "Wald") -> pd.DataFrame:
    """broom.mixed's ``tidy``: effect, group, term, estimate, std.error, statistic, df,
    p.value (and conf.low, conf.high with ``conf_int``). Fixed effects carry lmerTest's t
    tests (``ddf``: "Satterthwaite", "Kenward-Roger", or "lme4" for no df/p-value); variance
    components carry their estimate (standard deviations and correlations).

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> tidy(m)[["effect", "group", "term"]].values.tolist()[:3]
        [['fixed', None, '(Intercept)'], ['fixed', None, 'Days'], ['ran_pars', 'Subject', 'sd__(Intercept)']]
    """
    from .guards import require_lmm

    require_lmm(fit, "tidy")
    effects = (effects,) if isinstance(effects, str) else tuple(effects)
    parts = []
    if "fixed" in effects:
        ct = fit.coef_table(ddf)
        fx = pd.DataFrame({
            "effect": "fixed", "group": None, "term": list(ct.index),
            "estimate": ct["Estimate"].to_numpy(), "std.error": ct["Std. Error"].to_numpy(),
            "statistic": ct["t value"].to_numpy(),
            "df": ct["df"].to_numpy() if "df" in ct else np.nan,
            "p.value": ct["Pr(>|t|)"].to_numpy() if "Pr(>|t|)" in ct else np.nan,
        })
        if conf_int:
            if conf_method.lower() == "wald" and "df" in ct:
                q = stats.t.ppf(0.5 + conf_level / 2, fx["df"].to_numpy())  # lmerTest's t-based CI
            else:
                q = stats.norm.ppf(0.5 + conf_level / 2)
            if conf_method.lower() == "wald":
                fx["conf.low"] = fx["estimate"] - q * fx["std.error"]
                fx["conf.high"] = fx["estimate"] + q * fx["std.error"]
            else:
                ci = fit.confint(parm="beta_", level=conf_level, method=conf_method)
                fx["conf.low"], fx["conf.high"] = ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy()
        parts.append(fx)
    if "ran_pars" in effects:
        rp = ran_pars(fit)
        for c in ("std.error", "statistic", "df", "p.value"):
            rp[c] = np.nan
        if conf_int:
            if conf_method.lower() == "wald":
                rp["conf.low"] = rp["conf.high"] = np.nan
            else:
                ci = fit.confint(parm="theta_", level=conf_level, method=conf_method)
                ci = ci.loc[rp["parm"].to_numpy()]  # by name: VarCorr and theta orders differ
                rp["conf.low"], rp["conf.high"] = ci.iloc[:, 0].to_numpy(), ci.iloc[:, 1].to_numpy()
        parts.append(rp)
    if not parts:
        raise ValueError(f"effects must name 'fixed' and/or 'ran_pars', got {effects!r}")
    out = pd.concat(parts, ignore_index=True)
    cols = TIDY_COLUMNS + (["conf.low", "conf.high"] if conf_int else [])
    return out[cols]


def glance(fit) -> pd.DataFrame:
    """broom.mixed's ``glance``: nobs, sigma, logLik, AIC, BIC, deviance, df.residual (one row).
    ``deviance`` is the ML deviance (NaN for REML fits, whose criterion is ``REMLcrit``).

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> glance(m)[["nobs", "df.residual"]].values.tolist()
        [[180, 174]]
    """
    from .guards import require_lmm

    require_lmm(fit, "glance")
    return pd.DataFrame([{
        "nobs": fit.nobs, "sigma": fit.sigma, "logLik": fit.loglik, "AIC": fit.aic, "BIC": fit.bic,
        "deviance": fit.deviance if fit.deviance is not None else np.nan,
        "REMLcrit": fit.reml_criterion if fit.reml else np.nan,
        "df.residual": fit.df_resid,
    }])
