"""Plots of profiles and bootstrap replicates."""

from __future__ import annotations

import numpy as np
from .._lazy import lazy_module

from ..errors import ModelError
from ._mpl import grid

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)


def profile_zeta(profile, level: float = 0.95, ncols: int = 3):
    """Profile-zeta traces, one panel per parameter (lme4's ``xyplot(profile(fit))``): zeta
    against the parameter, with horizontal lines at +-z for ``level`` and a point at the
    estimate. ``profile`` is ``fit.profile()``.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> [ax.get_xlabel() for ax in profile_zeta(m.profile()).axes]
        ['sd_(Intercept)|Batch', 'sigma', '(Intercept)']
    """
    if not hasattr(profile, "traces"):
        raise ModelError(f"profile_zeta needs a profile (fit.profile()), got {type(profile).__name__}")
    tr = profile.traces
    params = list(dict.fromkeys(tr["param"]))
    z = stats.norm.ppf(0.5 + level / 2)
    fig, axes = grid(len(params), ncols)
    for ax, name in zip(axes, params):
        sub = tr[tr["param"] == name].sort_values("value")
        ax.plot(sub["value"], sub["zeta"], "-o", ms=2.5, lw=1.0)
        for h in (-z, z):
            ax.axhline(h, color="grey", lw=0.6, ls="--")
        ax.axhline(0.0, color="grey", lw=0.4)
        ax.set_xlabel(name)
        ax.set_ylabel("zeta")
    fig.tight_layout()
    return fig


def boot_densities(boot, params=None, ncols: int = 3):
    """Histogram (density scale) of each parameter's bootstrap replicates, with the original
    estimate marked; replicates that did not converge are left out. ``boot`` is
    ``fit.bootstrap(...)``.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig = boot_densities(m.bootstrap(20, seed=1), ["sigma", "Days"])
        >>> [ax.get_xlabel() for ax in fig.axes]
        ['sigma', 'Days']
    """
    if not hasattr(boot, "table") or not hasattr(boot, "parameters"):
        raise ModelError(f"boot_densities needs a bootstrap (fit.bootstrap(...)), got {type(boot).__name__}")
    names = list(boot.parameters if params is None else ([params] if isinstance(params, str) else params))
    tab = boot.table
    ok = tab["converged"].to_numpy(bool) if "converged" in tab else np.ones(len(tab), bool)
    fig, axes = grid(len(names), ncols)
    for ax, name in zip(axes, names):
        v = tab[name].to_numpy(float)[ok]
        v = v[np.isfinite(v)]
        ax.hist(v, bins=min(50, max(10, v.size // 20)), density=True, alpha=0.7)
        ax.axvline(float(boot.estimate[name]), color="k", lw=1.0)
        ax.set_xlabel(name)
    fig.tight_layout()
    return fig
