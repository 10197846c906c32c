"""Inference on fitted models: F tests with Satterthwaite and Kenward-Roger denominator
degrees of freedom, likelihood-ratio tests, and confidence intervals (Wald, profile)."""

from __future__ import annotations

from .anova import anova_table, lme4_anova
from .confint import confint, wald
from .lrt import lrt, refit_ml
from .table import AnovaTable
from .varpar import VarPar, varpar


def anova(*models, refit: bool = True, type=3, ddf: str = "Satterthwaite", **named_models) -> AnovaTable:
    """lme4's ``anova``: with one model, F tests of its fixed-effects terms
    (``fit.anova(type, ddf)``); with several, likelihood-ratio tests between them.

    Example:
        >>> df = jaxmm.datasets.load("sleepstudy")
        >>> m0 = jaxmm.lmer("Reaction ~ Days + (1|Subject)", df)
        >>> m1 = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", df)
        >>> list(jaxmm.anova(null=m0, full=m1).index)
        ['null', 'full']
    """
    if len(models) + len(named_models) == 1:
        (m,) = list(models) + list(named_models.values())
        return anova_table(m, type=type, ddf=ddf)
    return lrt(*models, refit=refit, **named_models)


__all__ = ["anova", "anova_table", "lme4_anova", "confint", "wald", "lrt", "refit_ml",
           "AnovaTable", "VarPar", "varpar"]
