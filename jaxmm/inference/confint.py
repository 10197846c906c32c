"""Confidence intervals as lme4's ``confint``: rows for the variance components (``sd_``,
``cor_``, ``sigma``) then the fixed effects; methods "profile", "Wald" and "boot"."""

from __future__ import annotations

import numpy as np
import pandas as pd
from .._lazy import lazy_module

from ..errors import ModelError

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)

METHODS = {"profile": "profile", "wald": "Wald", "boot": "boot"}


def level_names(level: float) -> list[str]:
    """R's column names for a two-sided interval: ``["2.5 %", "97.5 %"]`` at 0.95."""
    if not 0.0 < level < 1.0:
        raise ModelError(f"level must be between 0 and 1, got {level!r}")
    a = (1.0 - level) / 2.0
    return [f"{100 * a:.3g} %", f"{100 * (1 - a):.3g} %"]


def varpar_names(fit) -> list[str]:
    """lme4's names of the variance components in theta's order, then ``sigma``:
    ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ``sd_Days|Subject``.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> varpar_names(m)
        ['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject', 'sigma']
    """
    out = []
    for t in fit.terms:
        for j in range(t.q):
            for i in range(j, t.q):
                if i == j:
                    out.append(f"sd_{t.cnames[j]}|{t.group}")
                else:
                    out.append(f"cor_{t.cnames[i]}.{t.cnames[j]}|{t.group}")
    return out + ["sigma"]


def select(names: list[str], n_var: int, parm) -> list[str]:
    """lme4's ``parm``: None (all), "theta_" (variance components), "beta_" (fixed
    effects), or names / positions."""
    if parm is None:
        return names
    if isinstance(parm, str):
        parm = [parm]
    out = []
    for p in parm:
        if p == "theta_":
            out += names[:n_var]
        elif p == "beta_":
            out += names[n_var:]
        elif isinstance(p, (int, np.integer)):
            out.append(names[int(p)])
        elif p in names:
            out.append(p)
        else:
            raise ModelError(f"parm {p!r} is not a parameter of this model; choose from {names}")
    return list(dict.fromkeys(out))


def wald(fit, level: float = 0.95) -> pd.DataFrame:
    """Wald intervals: estimate +- z * standard error for the fixed effects; the variance
    components get NaN, as lme4's ``confint(method="Wald")``.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> wald(m).loc["Days"].round(3).tolist()
        [7.438, 13.497]
    """
    cols = level_names(level)
    z = stats.norm.ppf(0.5 + level / 2.0)
    vnames = varpar_names(fit)
    beta, se = fit.fixef.to_numpy(), fit.stderr.to_numpy()
    vals = np.vstack([np.full((len(vnames), 2), np.nan), np.c_[beta - z * se, beta + z * se]])
    return pd.DataFrame(vals, index=vnames + list(fit.fixef.index), columns=cols)


def confint(fit, parm=None, level: float = 0.95, method: str = "profile", **kwargs) -> pd.DataFrame:
    """Confidence intervals (lme4's ``confint.merMod``); see :meth:`LinearMixedModel.confint`.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> list(confint(m, method="Wald", parm="beta_").index)
        ['(Intercept)', 'Days']
    """
    from ..results.guards import require_lmm

    require_lmm(fit, "confint")
    key = METHODS.get(str(method).lower())
    if key is None:
        raise ModelError(f"method={method!r} is not known: use 'profile', 'Wald' or 'boot'")
    names = varpar_names(fit) + list(fit.fixef.index)
    which = select(names, len(names) - fit.p, parm)
    if key == "Wald":
        out = wald(fit, level)
    elif key == "profile":
        from .profile import confint_profile

        out = confint_profile(fit, level=level, which=which, **kwargs)
    else:
        nsim = kwargs.pop("nsim", 500)
        seed = kwargs.pop("seed", None)
        boot_method = kwargs.pop("boot_type", "percentile")
        boot = fit.bootstrap(nsim, seed=seed, **kwargs)
        out = boot.confint(level=level, method=boot_method)
    return out.loc[[w for w in which if w in out.index]]
