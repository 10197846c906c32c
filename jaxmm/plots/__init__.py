"""Diagnostic plots of fitted models (matplotlib, the optional ``[plot]`` extra). Every
function returns the matplotlib Figure.

    caterpillar(fit)        conditional modes with intervals per level (lme4's dotplot(ranef))
    resid_fitted(fit)       residuals against fitted values
    qq_residuals(fit)       normal QQ plot of the scaled residuals
    qq_ranef(fit)           normal QQ plots of the conditional modes, one panel per term column
    profile_zeta(profile)   profile-zeta traces (lme4's xyplot(profile))
    boot_densities(boot)    bootstrap distributions of the parameters

The examples use ``m``, the sleepstudy fit described in :class:`jaxmm.LinearMixedModel`'s
docstring (the doctest namespace provides it, see the repository's conftest.py).
"""

from __future__ import annotations

from .diagnostics import caterpillar, qq_ranef, qq_residuals, resid_fitted
from .inference import boot_densities, profile_zeta


__all__ = ["caterpillar", "resid_fitted", "qq_residuals", "qq_ranef", "profile_zeta", "boot_densities"]
