"""lme4's ``summary(glmerMod)`` text layout (shares the LMM summary's table helpers)."""

from __future__ import annotations

import numpy as np

from .summary import (SIGNIF_LEGEND, _table, correlation_table, format_pval, r_format,
                      random_effects_table, signif_stars)


def z_table(m) -> list[str]:
    tab = m.coef_table()
    cols = [r_format(tab["Estimate"]), r_format(tab["Std. Error"]),
            [f"{v:.3f}" for v in tab["z value"]], [format_pval(p) for p in tab["Pr(>|z|)"]],
            [signif_stars(p) for p in tab["Pr(>|z|)"]]]
    header = ["", "Estimate", "Std. Error", "z value", "Pr(>|z|)", ""]
    rows = [[name] + [c[i] for c in cols] for i, name in enumerate(tab.index)]
    return _table(header, rows) + ["---", SIGNIF_LEGEND]


def format_glmm_summary(m) -> str:
    how = ("Laplace Approximation" if m.nagq == 1 else
           f"Adaptive Gauss-Hermite Quadrature, nAGQ = {m.nagq}" if m.nagq > 1 else
           "Laplace Approximation, nAGQ = 0")
    lines = [f"Generalized linear mixed model fit by maximum likelihood ({how}) ['glmerMod']",
             f" Family: {m.family.name}  ( {m.family.link.name} )", f"Formula: {m.formula}"]
    if m.data_name:
        lines.append(f"   Data: {m.data_name}")
    lines.append("")
    vals = [m.aic, m.bic, m.loglik, m.objective]
    lines += _table(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                    [[f"{v:.1f}" for v in vals] + [str(m.df_resid)]], left=0)
    lines += ["", "Scaled residuals: "]
    q = np.quantile(m.residuals("pearson"), [0, 0.25, 0.5, 0.75, 1])
    lines += _table(["Min", "1Q", "Median", "3Q", "Max"], [[f"{v:.4f}" for v in q]], left=0)
    lines += ["", "Random effects:"] + random_effects_table(m)
    groups = ", ".join(f"{g}, {n}" for g, n in m.ngroups.items())
    lines.append(f"Number of obs: {m.nobs}, groups:  {groups}")
    if m.n_dropped:
        lines.append(f"({m.n_dropped} observations deleted due to missingness)")
    lines += ["", "Fixed effects:"] + z_table(m)
    corr = correlation_table(m)
    if corr:
        lines += [""] + corr
    opt = m.opt
    lines += ["", f"optimizer: {opt.n_iter} iterations, {opt.n_eval} evaluations, "
                  f"max|grad| {opt.max_grad:.2g}"]
    if m.is_singular:
        lines.append("boundary (singular) fit: see is_singular")
    for w in opt.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)
