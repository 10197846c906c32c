"""The fitted linear mixed model (lme4's ``merMod``): estimates, lazily derived quantities."""

from __future__ import annotations

import warnings
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..core.devfun import DevFun
from ..core.solve import Estimates, estimates_jit
from ..errors import ConvergenceWarning, DataError, SingularFitWarning
from ..optimize.lmm import OptSummary
from ..precision import compute
from . import ranef as _ranef
from .common import FitBasics
from .lmm_inference import InferenceMethods
from .lmm_workflow import WorkflowMethods
from .varcorr import varcorr_frame


RESIDUAL_TYPES = ("response", "pearson", "working", "deviance")


def _check_type(type, allowed: tuple[str, ...], what: str) -> None:
    if not isinstance(type, str) or type not in allowed:
        raise DataError(f"{what}(type={type!r}): use one of {', '.join(map(repr, allowed))}"
                        + (" (scaled residuals: residuals(scaled=True))" if isinstance(type, bool) else ""))


class LinearMixedModel(FitBasics, InferenceMethods, WorkflowMethods):
    """A fitted linear mixed model. Build it with :func:`jaxmm.lmer`.

    The examples of the methods and properties use ``m``, this model fitted by REML (the
    doctest namespace provides it, see the repository's conftest.py):

        m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))

    Example:
        >>> import jaxmm
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> m.fixef.round(3).to_dict()
        {'(Intercept)': 251.405, 'Days': 10.467}
        >>> round(m.sigma, 3)
        25.592
    """

    def __init__(
        self, design, devfun: DevFun, opt: OptSummary, *, estimates: Estimates | None = None,
        data_name: str | None = None,
    ):
        self.design = design
        self.devfun = devfun
        self.opt = opt
        self.reml = devfun.reml
        self.data_name = data_name
        if estimates is None:
            with compute():
                estimates = jax.device_get(
                    estimates_jit(jnp.asarray(opt.theta, jnp.float64), devfun.blocks, devfun.layout)
                )
        self._est: Estimates = estimates
        if self.is_singular:
            warnings.warn("boundary (singular) fit: see jaxmm's is_singular", SingularFitWarning, 2)
        for w in opt.warnings:
            warnings.warn(w, ConvergenceWarning, 2)

    # ----- criterion -------------------------------------------------------------------
    @property
    def objective(self) -> float:
        """The minimized criterion: REML criterion or ML deviance.

        Example:
            >>> round(m.objective, 3)
            1743.628
        """
        return float(self.opt.fmin)

    @property
    def reml_criterion(self) -> float | None:
        """REML criterion at convergence (REML fits), as lme4's ``REMLcrit``.

        Example:
            >>> round(m.reml_criterion, 3)
            1743.628
        """
        return self.objective if self.reml else None

    @property
    def deviance(self) -> float | None:
        """ML deviance (-2 log-likelihood) for ML fits; None for REML fits (use
        ``reml_criterion``, or refit with ``reml=False``).

        Example:
            >>> print(m.deviance)
            None
            >>> ml = jaxmm.lmer(m.formula, jaxmm.datasets.load("sleepstudy"), reml=False)
            >>> round(ml.deviance, 3)
            1751.939
        """
        return None if self.reml else self.objective


    @property
    def dof(self) -> int:
        """Number of parameters: fixed effects + theta + sigma.

        Example:
            >>> m.dof
            6
        """
        return self.p + self.opt.theta.size + 1




    # ----- fixed effects ---------------------------------------------------------------
    @property
    def sigma(self) -> float:
        """Residual standard deviation.

        Example:
            >>> round(m.sigma, 3)
            25.592
        """
        denom = self.nobs - (self.p if self.reml else 0)
        return float(np.sqrt(self._est.pwrss / denom))

    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates named as lme4 (``(Intercept)``, ``Drugb``, ``gr.L`` ...).

        Example:
            >>> m.fixef.round(3).to_dict()
            {'(Intercept)': 251.405, 'Days': 10.467}
        """
        return pd.Series(np.asarray(self._est.beta), index=list(self.design.x_names), name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance matrix of the fixed effects, sigma^2 (RX RX')^{-1}.

        Example:
            >>> m.vcov.round(4).values.tolist()
            [[46.5746, -1.4511], [-1.4511, 2.3895]]
        """
        RX = np.asarray(self._est.RX)
        Ri = np.linalg.inv(RX)
        V = self.sigma**2 * (Ri.T @ Ri)
        names = list(self.design.x_names)
        return pd.DataFrame(V, index=names, columns=names)

    @cached_property
    def stderr(self) -> pd.Series:
        """Standard errors of the fixed effects.

        Example:
            >>> m.stderr.round(4).to_dict()
            {'(Intercept)': 6.8246, 'Days': 1.5458}
        """
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="stderr")

    def coef_table(self, ddf: str = "Satterthwaite") -> pd.DataFrame:
        """The fixed-effects table: Estimate, Std. Error, df, t value, Pr(>|t|).

        ``ddf``: "Satterthwaite" (default, as lmerTest's summary), "Kenward-Roger" (REML fits:
        adjusted standard errors, as pbkrtest), or "lme4" (lme4's table: no df, no p-value).

        Example:
            >>> m.coef_table()[["Estimate", "df", "t value"]].round(2)
                         Estimate    df  t value
            (Intercept)    251.41  17.0    36.84
            Days            10.47  17.0     6.77
        """
        from ..inference.coeftable import coef_tests

        return coef_tests(self, ddf)

    # ----- variance components and random effects ---------------------------------------
    def varcorr(self) -> pd.DataFrame:
        """Variance components as ``as.data.frame(VarCorr(m))``: grp, var1, var2, vcov, sdcor.

        Example:
            >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
            >>> m.varcorr()[["grp", "sdcor"]].round(2).values.tolist()
            [['Batch', 42.0], ['Residual', 49.51]]
        """
        covs = [self.sigma**2 * (T @ T.T) for T in self._Ts]
        return varcorr_frame([t.group for t in self.terms], [t.cnames for t in self.terms], covs, self.sigma)

    @cached_property
    def _modes(self) -> list[np.ndarray]:
        lay = self.devfun.layout
        return _ranef.term_modes(self._est.u1, self._est.u_rest, self._Ts, lay, [t.nlevels for t in self.terms])

    @cached_property
    def _condcov(self) -> list[np.ndarray]:
        return _ranef.cond_cov(
            self._est, self.devfun.blocks, self.devfun.layout, self._Ts,
            [t.nlevels for t in self.terms], self.sigma,
        )

    def ranef_dict(self) -> dict[str, pd.DataFrame]:
        """Conditional modes per grouping factor, levels x columns (lme4's ``ranef(m)``).

        Example:
            >>> m.ranef_dict()["Subject"].head(2).round(3)
                 (Intercept)   Days
            308        2.259  9.199
            309      -40.399 -8.620
        """
        out: dict[str, pd.DataFrame] = {}
        for k, t in enumerate(self.terms):
            df = pd.DataFrame(self._modes[k], index=list(t.levels), columns=list(t.cnames))
            out[t.group] = pd.concat([out[t.group], df], axis=1) if t.group in out else df
        return out

    def coef(self) -> dict[str, pd.DataFrame]:
        """Fixed plus random effects per level of each grouping factor (lme4's ``coef``).

        Example:
            >>> m.coef()["Subject"].head(2).round(3)
                 (Intercept)    Days
            308      253.664  19.666
            309      211.007   1.848
        """
        out = {}
        for g, re in self.ranef_dict().items():
            df = pd.DataFrame(np.tile(self.fixef.to_numpy(), (len(re), 1)), index=re.index, columns=self.fixef.index)
            for c in re.columns:
                if c in df.columns:
                    df[c] = df[c] + re[c]
                else:
                    df[c] = re[c]
            out[g] = df
        return out

    # ----- fitted values -----------------------------------------------------------------
    def fitted(self, type: str = "response") -> np.ndarray:
        """Fitted values X beta + Z b for the observations used (``type`` "response" or
        "link" are the same for a linear model; accepted as in the GLMM's ``fitted``).

        Example:
            >>> m.fitted()[:3].round(2).tolist()
            [253.66, 273.33, 293.0]
        """
        _check_type(type, ("response", "link"), "fitted")
        eta = self.design.X @ self.fixef.to_numpy()
        for k, t in enumerate(self.terms):
            eta = eta + np.einsum("ic,ic->i", t.Xt, self._modes[k][t.index])
        return eta

    def residuals(self, type: str = "response", *, scaled: bool = False) -> np.ndarray:
        """Residuals y - fitted, divided by sigma when ``scaled``. For a linear model the
        types "response", "pearson", "working" and "deviance" coincide (as lme4's).

        Example:
            >>> m.residuals()[:3].round(2).tolist()
            [-4.1, -14.63, -42.2]
            >>> m.residuals(scaled=True)[:2].round(3).tolist()
            [-0.16, -0.571]
        """
        _check_type(type, RESIDUAL_TYPES, "residuals")
        r = self.design.y - self.fitted()
        return r / self.sigma if scaled else r

    # ----- display -----------------------------------------------------------------------
    def summary(self, ddf: str = "Satterthwaite") -> str:
        """lme4's ``summary(m)`` as text, with lmerTest's df and p-values (``ddf="lme4"``
        for lme4's own table).

        Example:
            >>> print(m.summary())
            Linear mixed model fit by REML. t-tests use Satterthwaite's method ['lmerModLmerTest']
            Formula: Reaction ~ Days + (Days|Subject)
            <BLANKLINE>
            REML criterion at convergence: 1743.6
            ...
            Fixed effects:
                        Estimate Std. Error    df t value Pr(>|t|)
            (Intercept)   251.41      6.825 17.00  36.838  < 2e-16 ***
            Days           10.47      1.546 17.00   6.771 3.26e-06 ***
            ...
        """
        from .summary import format_summary

        return format_summary(self, ddf=ddf)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        import html

        return f"<pre>{html.escape(self.summary())}</pre>"
