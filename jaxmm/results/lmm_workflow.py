"""Workflow methods of :class:`~jaxmm.results.lmm.LinearMixedModel`: tidy tables, saved
fits, simulation, the batched bootstrap, many responses, prediction."""

from __future__ import annotations

import numpy as np
import pandas as pd


class WorkflowMethods:
    """Mixed into LinearMixedModel; examples use ``m``, the sleepstudy fit of its docstring."""

    # ----- tidy tables and saved fits ------------------------------------------------------
    def tidy(self, effects=("fixed", "ran_pars"), conf_int: bool = False, conf_level: float = 0.95,
             ddf: str = "Satterthwaite", conf_method: str = "Wald") -> pd.DataFrame:
        """broom.mixed's ``tidy``: one row per parameter (see :func:`jaxmm.results.tidy.tidy`).

        Example:
            >>> m.tidy()[["effect", "term", "estimate"]].round(3)
                 effect                   term  estimate
            0     fixed            (Intercept)   251.405
            1     fixed                   Days    10.467
            2  ran_pars        sd__(Intercept)    24.740
            3  ran_pars               sd__Days     5.922
            4  ran_pars  cor__(Intercept).Days     0.066
            5  ran_pars        sd__Observation    25.592
        """
        from .tidy import tidy

        return tidy(self, effects, conf_int, conf_level, ddf, conf_method)

    def glance(self) -> pd.DataFrame:
        """broom.mixed's ``glance``: nobs, sigma, logLik, AIC, BIC, deviance, df.residual.

        Example:
            >>> m.glance()[["nobs", "sigma", "AIC"]].round(2)
               nobs  sigma      AIC
            0   180  25.59  1755.63
        """
        from .tidy import glance

        return glance(self)

    def save(self, path):
        """Write the fit to a small JSON file; :func:`jaxmm.load` restores it on the same data
        without re-optimizing.

        Example:
            >>> import os, tempfile
            >>> path = m.save(os.path.join(tempfile.mkdtemp(), "fit.json"))
            >>> m2 = jaxmm.load(path, jaxmm.datasets.load("sleepstudy"))
            >>> m2.fixef.equals(m.fixef), m2.sigma == m.sigma
            (True, True)
        """
        from .persist import save

        return save(self, path)

    # ----- batch: simulate, bootstrap, refit_many, predict -----
    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> np.ndarray:
        """Simulated responses (nsim, nobs) from the fitted model (lme4's ``simulate``);
        see :func:`jaxmm.batch.simulate`.

        Example:
            >>> y = m.simulate(2, seed=1)
            >>> y.shape
            (2, 180)
            >>> bool((y == m.simulate(2, seed=1)).all())   # reproducible from the seed
            True
        """
        from ..batch.simulate import simulate

        return simulate(self, nsim, seed, use_u)

    def bootstrap(self, nsim: int = 1000, seed=None, **kwargs):
        """Parametric bootstrap as one batched computation (lme4's ``bootMer``); see
        :func:`jaxmm.batch.bootstrap`.

        Example:
            >>> b = m.bootstrap(20, seed=1)
            >>> b
            Bootstrap(20 replicates, seed=1, 0 not converged, 0 singular)
            >>> b.parameters[3:]
            ['sigma', '(Intercept)', 'Days']
        """
        from ..batch.bootstrap import bootstrap

        return bootstrap(self, nsim, seed, **kwargs)

    def refit_many(self, Y, **kwargs):
        """Refit to each column of Y (nobs x k), batched; see :func:`jaxmm.batch.refit_many`.

        Example:
            >>> fits = m.refit_many(m.simulate(3, seed=1).T)
            >>> fits
            ManyFits(3 responses, 0 not converged, 0 singular)
            >>> fits.table[["objective", "sigma", "Days"]].shape
            (3, 3)
        """
        from ..batch.many import refit_many

        return refit_many(self, Y, **kwargs)

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False,
                type: str = "response") -> np.ndarray:
        """Predictions (lme4's ``predict``); see :func:`jaxmm.results.predict.predict`.
        ``type`` "response" or "link" (the same for a linear model).

        Example:
            >>> m.predict()[:2].round(2).tolist()            # the fitted values
            [253.66, 273.33]
            >>> new = pd.DataFrame({"Days": [0, 10]})
            >>> m.predict(new, re_form="~0").round(2).tolist()   # population level
            [251.41, 356.08]
        """
        from .lmm import _check_type
        from .predict import predict

        _check_type(type, ("response", "link"), "predict")
        return predict(self, newdata, re_form, allow_new_levels)
