"""lme4's ``summary(merMod)`` text layout."""

from __future__ import annotations

import re

import numpy as np


def r_format(values, digits: int = 4) -> list[str]:
    """R's ``format(x, digits=4)`` for a column: common decimals chosen so that the
    smallest non-zero magnitude keeps ``digits`` significant digits."""
    x = np.asarray(values, dtype=float)
    finite = np.abs(x[np.isfinite(x) & (x != 0)])
    if finite.size == 0:
        return ["0" if np.isfinite(v) else "NaN" for v in x]
    dec = int(np.clip(digits - 1 - np.floor(np.log10(finite.min())), 0, 8))
    return [f"{v:.{dec}f}" if np.isfinite(v) else "NaN" for v in x]


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate``: drop lower-case vowels, then lower-case letters, from the end."""
    if len(name) <= minlength:
        return name
    chars = list(name)
    for pattern in ("[aeiou]", "[a-z]"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if re.fullmatch(pattern, chars[i]) and chars[i - 1] != " ":
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


def _table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """Right-aligned columns except the first ``left`` ones (left-aligned)."""
    cols = list(zip(*([header] + rows))) if rows else [[h] for h in header]
    widths = [max(len(c) for c in col) for col in cols]
    out = []
    for row in [header] + rows:
        cells = [c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        out.append(" ".join(cells).rstrip())
    return out


def random_effects_table(m) -> list[str]:
    vc = m.varcorr()
    rows = []
    for grp in dict.fromkeys(vc["grp"]):
        sub = vc[vc["grp"] == grp]
        diag = sub[sub["var2"].isna()]
        off = sub[sub["var2"].notna()]
        names = list(diag["var1"]) if grp != "Residual" else [""]
        for i, (_, r) in enumerate(diag.iterrows()):
            corr = []
            for j in range(i):
                c = off[(off["var1"] == names[j]) & (off["var2"] == names[i])]
                corr.append(f"{c['sdcor'].iloc[0]:.2f}" if len(c) else "")
            rows.append([grp if i == 0 else "", names[i] or "", r["vcov"], r["sdcor"]] + corr)
    for col in (2, 3):  # Variance and Std.Dev. columns formatted as R does, together
        for row, txt in zip(rows, r_format([row[col] for row in rows])):
            row[col] = txt
    ncorr = max(len(r) for r in rows) - 4
    header = ["Groups", "Name", "Variance", "Std.Dev."] + (["Corr"] + [""] * (ncorr - 1) if ncorr > 0 else [])
    rows = [r + [""] * (len(header) - len(r)) for r in rows]
    return [" " + line for line in _table(header, rows, left=2)]


def format_pval(p: float, digits: int = 3) -> str:
    """R's format.pval (with its default eps, "< 2e-16")."""
    if not np.isfinite(p):
        return "NA"
    if p < 2.220446e-16:
        return "< 2e-16"
    txt = f"{p:.{digits}g}"
    if "e" in txt:
        mant, exp = txt.split("e")
        txt = f"{mant}e{int(exp):+03d}"
    return txt


def signif_stars(p: float) -> str:
    for cut, star in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return star
    return ""


SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def fixed_effects_table(m, ddf: str = "Satterthwaite") -> list[str]:
    """R's printCoefmat: estimates and standard errors with common decimals, the statistic
    rounded to 3 decimals; with df and p-values (and significance stars) unless ``ddf="lme4"``."""
    tab = m.coef_table(ddf)
    cols = [r_format(tab["Estimate"]), r_format(tab["Std. Error"])]
    if "df" in tab:
        cols.append(r_format(tab["df"]))
    cols.append([f"{v:.3f}" for v in tab["t value"]])
    header = [""] + [c for c in tab.columns if c != "Pr(>|t|)"]
    if "Pr(>|t|)" in tab:
        cols.append([format_pval(p) for p in tab["Pr(>|t|)"]])
        cols.append([signif_stars(p) for p in tab["Pr(>|t|)"]])
        header += ["Pr(>|t|)", ""]
    rows = [[name] + [c[i] for c in cols] for i, name in enumerate(tab.index)]
    lines = _table(header, rows)
    if "Pr(>|t|)" in tab:
        lines += ["---", SIGNIF_LEGEND]
    return lines


def correlation_table(m) -> list[str]:
    V = m.vcov.to_numpy()
    if V.shape[0] < 2:
        return []
    sd = np.sqrt(np.diag(V))
    C = V / np.outer(sd, sd)
    names = list(m.vcov.index)
    short = [abbreviate(n) for n in names]
    C = np.round(C, 3) + 0.0  # no "-0.000"
    rows = [[names[i]] + [f"{C[i, j]:.3f}" for j in range(i)] + [""] * (len(names) - 1 - i) for i in range(1, len(names))]
    return ["Correlation of Fixed Effects:"] + _table([""] + short[:-1], rows)


def rows_kept(m) -> bool:
    """False for a fit from streamed data, whose per-row arrays were not kept."""
    from ..design.stream import RowsNotKept

    return not isinstance(m.design.X, RowsNotKept)


def format_summary(m, ddf: str = "Satterthwaite") -> str:
    """The full summary text of a fitted LinearMixedModel."""
    from ..inference.anova import _ddf

    method = _ddf(ddf)
    kind = "REML" if m.reml else "maximum likelihood "
    if method == "lme4":
        head = f"Linear mixed model fit by {kind} ['lmerMod']"
    else:
        head = f"Linear mixed model fit by {kind.strip()}. t-tests use {method}'s method ['lmerModLmerTest']"
    lines = [head, f"Formula: {m.formula}"]
    if m.data_name:
        lines.append(f"   Data: {m.data_name}")
    lines.append("")
    if m.reml:
        lines.append(f"REML criterion at convergence: {m.objective:.1f}")
    else:
        vals = [m.aic, m.bic, m.loglik, m.deviance, m.df_resid]
        lines += _table(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                        [[f"{v:.1f}" for v in vals[:4]] + [str(vals[4])]], left=0)
    if rows_kept(m):
        lines += ["", "Scaled residuals: "]
        q = np.quantile(m.residuals(scaled=True), [0, 0.25, 0.5, 0.75, 1])
        lines += _table(["Min", "1Q", "Median", "3Q", "Max"], [[f"{v:.4f}" for v in q]], left=0)
    else:
        lines += ["", "Scaled residuals: not available (fitted from streamed data)"]
    lines += ["", "Random effects:"] + random_effects_table(m)
    groups = "; ".join(f"{g}, {n}" for g, n in m.ngroups.items())
    lines.append(f"Number of obs: {m.nobs}, groups:  {groups}")
    if m.n_dropped:
        lines.append(f"({m.n_dropped} observations deleted due to missingness)")
    lines += ["", "Fixed effects:"] + fixed_effects_table(m, method)
    corr = correlation_table(m)
    if corr:
        lines += [""] + corr
    opt = m.opt
    lines += ["", f"optimizer: {opt.n_iter} iterations, {opt.n_eval} evaluations, max|grad| {opt.max_grad:.2g}"]
    if m.is_singular:
        lines.append("boundary (singular) fit: see is_singular")
    for w in opt.warnings:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)
