"""Random-effects and residual diagnostics."""

from __future__ import annotations

import numpy as np
from .._lazy import lazy_module

from ._mpl import grid

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)


def caterpillar(fit, level: float = 0.95, groups=None, ncols: int = 3):
    """Conditional modes of each term column with ``level`` intervals (+- z * condsd), levels
    sorted by the mode: lme4's ``dotplot(ranef(fit, condVar=TRUE))``. One panel per grouping
    factor and column.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig = caterpillar(m)
        >>> [ax.get_title() for ax in fig.axes]
        ['Subject: (Intercept)', 'Subject: Days']
    """
    re = fit.ranef(condvar=True)
    if groups is not None:
        groups = [groups] if isinstance(groups, str) else list(groups)
        re = re[re.grpvar.isin(groups)]
    keys = list(dict.fromkeys(zip(re.grpvar, re.term)))
    z = stats.norm.ppf(0.5 + level / 2)
    fig, axes = grid(len(keys), ncols)
    for ax, (g, term) in zip(axes, keys):
        sub = re[(re.grpvar == g) & (re.term == term)].sort_values("condval")
        y = np.arange(len(sub))
        ax.errorbar(sub.condval, y, xerr=z * sub.condsd, fmt="o", ms=3, lw=0.8, capsize=0)
        ax.axvline(0.0, color="grey", lw=0.6, ls="--")
        ax.set_yticks(y if len(sub) <= 40 else [])
        if len(sub) <= 40:
            ax.set_yticklabels([str(v) for v in sub.grp], fontsize=6)
        ax.set_title(f"{g}: {term}")
    fig.tight_layout()
    return fig


def _scaled_residuals(fit) -> np.ndarray:
    """Residuals over sigma for a linear model; Pearson residuals for a GLMM (what each
    model's summary quantiles)."""
    if hasattr(fit, "family"):
        return fit.residuals("pearson")
    return fit.residuals(scaled=True)


def resid_fitted(fit):
    """Scaled residuals against fitted values, with a smooth reference line at zero.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> len(resid_fitted(m).axes[0].collections[0].get_offsets())
        180
    """
    fig, (ax,) = grid(1, 1, size=4.0)
    ax.scatter(fit.fitted(), _scaled_residuals(fit), s=8)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("fitted values")
    ax.set_ylabel("scaled residuals")
    fig.tight_layout()
    return fig


def _qq(ax, values: np.ndarray, title: str) -> None:
    v = np.sort(np.asarray(values, float))
    q = stats.norm.ppf((np.arange(1, v.size + 1) - 0.5) / v.size)
    ax.scatter(q, v, s=8)
    if v.size > 1:
        q1, q3 = np.quantile(v, [0.25, 0.75])
        z1, z3 = stats.norm.ppf([0.25, 0.75])
        slope = (q3 - q1) / (z3 - z1)
        ax.plot(q, q1 + slope * (q - z1), color="grey", lw=0.8)  # R's qqline
    ax.set_xlabel("standard normal quantiles")
    ax.set_title(title)


def qq_residuals(fit):
    """Normal QQ plot of the scaled residuals, with R's qqline.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> qq_residuals(m).axes[0].get_title()
        'scaled residuals'
    """
    fig, (ax,) = grid(1, 1, size=4.0)
    _qq(ax, _scaled_residuals(fit), "scaled residuals")
    fig.tight_layout()
    return fig


def qq_ranef(fit, ncols: int = 3):
    """Normal QQ plots of the conditional modes, one panel per grouping factor and column
    (lme4's ``qqmath(ranef(fit))``).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> m = jaxmm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", jaxmm.datasets.load("Penicillin"))
        >>> len(qq_ranef(m).axes)
        2
    """
    re = fit.ranef(condvar=False)
    keys = list(dict.fromkeys(zip(re.grpvar, re.term)))
    fig, axes = grid(len(keys), ncols)
    for ax, (g, term) in zip(axes, keys):
        _qq(ax, re[(re.grpvar == g) & (re.term == term)].condval, f"{g}: {term}")
    fig.tight_layout()
    return fig
