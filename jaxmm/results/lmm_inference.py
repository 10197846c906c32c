"""Inference methods of :class:`~jaxmm.results.lmm.LinearMixedModel`: asymptotics of the
variance parameters, F tests, confidence intervals, Kenward-Roger, likelihood profiles
(the computations live in :mod:`jaxmm.inference`)."""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd


class InferenceMethods:
    """Mixed into LinearMixedModel; examples use ``m``, the sleepstudy fit of its docstring."""

    # ----- inference ---------------------------------------------------------------------
    @cached_property
    def _varpar(self):
        from ..inference.varpar import varpar

        return varpar(self)

    @property
    def vcov_varpar(self) -> pd.DataFrame:
        """Asymptotic covariance of the variance parameters (theta..., sigma), from the exact
        Hessian of the deviance in (theta, sigma) (lmerTest's ``vcov_varpar``).

        Example:
            >>> m.vcov_varpar.shape
            (4, 4)
            >>> round(float(m.vcov_varpar.loc["sigma", "sigma"]), 3)
            2.274
        """
        vp = self._varpar
        return pd.DataFrame(vp.vcov, index=list(vp.names), columns=list(vp.names))

    @property
    def stderr_varpar(self) -> pd.Series:
        """Wald standard errors of theta and sigma (from :attr:`vcov_varpar`).

        Example:
            >>> m.stderr_varpar.round(3).to_dict()
            {'Subject.(Intercept)': 0.24, 'Subject.Days.(Intercept)': 0.074, 'Subject.Days': 0.053, 'sigma': 1.508}
        """
        vp = self._varpar
        return pd.Series(np.sqrt(np.maximum(np.diag(vp.vcov), 0.0)), index=list(vp.names), name="stderr")

    def anova(self, type=3, ddf: str = "Satterthwaite") -> pd.DataFrame:
        """F tests of the fixed-effects terms (lmerTest's ``anova``): Sum Sq, Mean Sq, NumDF,
        DenDF, F value, Pr(>F). ``type`` 3 (SAS type III, default) or 1 (sequential);
        ``ddf`` "Satterthwaite", "Kenward-Roger" or "lme4" (lme4's sequential table).
        Compare models with :func:`jaxmm.anova`.

        Example:
            >>> round(float(m.anova().loc["Days", "F value"]), 2)
            45.85
        """
        from ..inference.anova import anova_table

        return anova_table(self, type=type, ddf=ddf)

    def confint(self, parm=None, level: float = 0.95, method: str = "profile", **kwargs) -> pd.DataFrame:
        """Confidence intervals for the variance components (sd_, cor_, sigma) and the fixed
        effects, as lme4's ``confint``: ``method`` "profile" (default), "Wald" or "boot".
        ``parm`` selects rows by name (or "theta_" / "beta_" for all of either kind).

        Example:
            >>> m.confint(parm="Days").round(2)
                  2.5 %  97.5 %
            Days   7.36   13.58
            >>> m.confint(parm="beta_", method="Wald").round(2)
                          2.5 %  97.5 %
            (Intercept)  238.03  264.78
            Days           7.44   13.50
        """
        from ..inference.confint import confint

        return confint(self, parm=parm, level=level, method=method, **kwargs)

    # ----- Kenward-Roger -----
    @cached_property
    def _kr_state(self):
        """Kenward-Roger's ingredients at the REML estimates (see jaxmm.inference.kenward_roger)."""
        from ..inference.kenward_roger import kr_state

        return kr_state(self)

    @cached_property
    def vcov_kr(self) -> pd.DataFrame:
        """Kenward-Roger's adjusted covariance of the fixed effects (pbkrtest's ``vcovAdj``;
        REML fits only).

        Example:
            >>> m.vcov_kr.round(4).values.tolist()   # balanced data: no adjustment here
            [[46.5746, -1.4511], [-1.4511, 2.3895]]
        """
        names = list(self.design.x_names)
        return pd.DataFrame(self._kr_state.phi_adj, index=names, columns=names)

    # ----- likelihood profiles -----
    def profile(self, which=None, alphamax: float = 0.01, maxpts: int = 100, delta: float | None = None):
        """Likelihood profiles of the parameters (lme4's ``profile``); see
        :func:`jaxmm.inference.profile.profile`. ``.confint(level)`` gives the intervals.

        Example:
            >>> pr = m.profile(which="Days")
            >>> pr.confint().round(2)
                  2.5 %  97.5 %
            Days   7.36   13.58
        """
        from ..inference.profile import profile

        return profile(self, which=which, alphamax=alphamax, maxpts=maxpts, delta=delta)
