"""Likelihood-ratio tests between nested models: lme4's ``anova(m1, m2, ...)``."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from .._lazy import lazy_module

from ..errors import DataError, JaxmmWarning, ModelError
from ..results.summary import rows_kept
from .table import AnovaTable, with_heading

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)

LRT_COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def refit_ml(fit):
    """The same model refitted by maximum likelihood (lme4's ``refitML``), warm-started at
    the REML estimate of theta.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> round(refit_ml(m).deviance, 2)
        1751.94
    """
    if not fit.reml:
        return fit
    from ..optimize.lmm import run_fit
    from ..pipeline import mk_devfun
    from ..results.lmm import LinearMixedModel

    devfun = mk_devfun(fit.design, reml=False)
    res, opt = run_fit(devfun, fit.opt.theta)
    with warnings.catch_warnings():
        # the REML fit already reported its own singularity or convergence problems
        warnings.simplefilter("default", JaxmmWarning)
        return LinearMixedModel(fit.design, devfun, opt, estimates=res.estimates, data_name=fit.data_name)


def _check_same_data(named: dict) -> None:
    (n0, m0), *rest = named.items()
    for name, m in rest:
        if m.nobs != m0.nobs:
            raise DataError(
                f"models were not all fitted to the same data: {n0!r} has {m0.nobs} "
                f"observations, {name!r} has {m.nobs} (missing values in columns one model "
                "uses? drop them from the data first)"
            )
        streamed = [k for k, f in ((n0, m0), (name, m)) if not rows_kept(f)]
        if streamed:
            raise DataError(
                f"cannot check that {n0!r} and {name!r} were fitted to the same observations: "
                f"{' and '.join(map(repr, streamed))} came from streamed data, whose rows were "
                "not kept; compare fits made from a DataFrame"
            )
        if not (np.array_equal(m.design.rows, m0.design.rows) and np.array_equal(m.design.y, m0.design.y)):
            raise DataError(
                f"models were not all fitted to the same data: {n0!r} and {name!r} have "
                "different responses or rows; likelihood-ratio tests need the same observations"
            )


def lrt(*models, refit: bool = True, **named_models) -> AnovaTable:
    """Likelihood-ratio tests of nested models (lme4's ``anova(m1, m2, ...)``).

    Models are sorted by number of parameters; each row is tested against the row above:
    Chisq = twice the gain in log-likelihood, Df = extra parameters. REML fits are refitted
    by maximum likelihood first (``refit=False`` compares the fits as they are), and the
    heading says so. Pass models positionally (named ``m1``, ``m2``...) or by keyword.

    Example:
        >>> df = jaxmm.datasets.load("sleepstudy")
        >>> m0 = jaxmm.lmer("Reaction ~ Days + (1|Subject)", df)
        >>> m1 = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", df)
        >>> t = lrt(m0, m1)
        >>> round(float(t.loc["m2", "Chisq"]), 2), int(t.loc["m2", "Df"])
        (42.14, 2)
    """
    named = {f"m{i + 1}": m for i, m in enumerate(models)}
    for k, m in named_models.items():
        if k in named:
            raise ModelError(f"model name {k!r} is given twice")
        named[k] = m
    if len(named) < 2:
        raise ModelError("likelihood-ratio tests need at least two models; for F tests of one "
                         "model's terms use fit.anova()")
    for k, m in named.items():
        if not hasattr(m, "loglik") or not hasattr(m, "design"):
            raise ModelError(f"{k!r} is not a fitted model ({type(m).__name__})")
    _check_same_data(named)
    heading = ["Data: " + (next(iter(named.values())).data_name or "data")]
    if refit and any(m.reml for m in named.values()):
        heading.insert(0, "refitting model(s) with ML (instead of REML)")
        named = {k: refit_ml(m) for k, m in named.items()}
    elif len({m.reml for m in named.values()}) > 1:
        raise ModelError("cannot compare REML and ML fits without refitting: use refit=True")
    order = sorted(named, key=lambda k: named[k].dof)  # stable: ties keep the given order
    heading += ["Models:"] + [f"{k}: {named[k].formula}" for k in order]
    ll = np.array([named[k].loglik for k in order])
    npar = np.array([named[k].dof for k in order])
    chisq = np.r_[np.nan, 2.0 * np.maximum(0.0, np.diff(ll))]
    df = np.r_[np.nan, np.diff(npar)]
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    p[0] = np.nan
    out = pd.DataFrame({
        "npar": npar,
        "AIC": [named[k].aic for k in order],
        "BIC": [named[k].bic for k in order],
        "logLik": ll,
        "deviance": -2.0 * ll,
        "Chisq": chisq,
        "Df": df,
        "Pr(>Chisq)": p,
    }, index=pd.Index(order, name="model"))
    out["Df"] = out["Df"].astype("Int64")
    return with_heading(out, *heading)
