"""The fitted generalized linear mixed model (lme4's ``glmerMod``)."""

from __future__ import annotations

import warnings
from functools import cached_property

import jax.numpy as jnp
import numpy as np
import pandas as pd
from .._lazy import lazy_module

from ..errors import ConvergenceWarning, DataError, SingularFitWarning
from ..precision import compute
from .common import FitBasics
from .glmm_workflow import GlmmWorkflowMethods
from .varcorr import varcorr_frame

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)
sl = lazy_module("scipy.linalg")  # ~70 ms of import jaxmm

RESIDUAL_TYPES = ("deviance", "pearson", "response", "working")


class GeneralizedLinearMixedModel(FitBasics, GlmmWorkflowMethods):
    """A fitted GLMM. Build it with :func:`jaxmm.glmer`.

    The examples of the methods and properties use ``g``, this binomial model fitted by
    Laplace (the doctest namespace provides it, see the repository's conftest.py):

        g = jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                        jaxmm.datasets.load("cbpp"), family="binomial")

    Example:
        >>> cbpp = jaxmm.datasets.load("cbpp")
        >>> g = jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp)
        >>> round(g.aic, 2), g.df_resid
        (194.05, 51)
    """

    reml = False

    def __init__(self, gdesign, fit, opt, *, data_name: str | None = None):
        self.gdesign = gdesign
        self.design = gdesign.design
        self.family = gdesign.family
        self.fit = fit
        self.opt = opt
        self.nagq = opt.nagq
        self.data_name = data_name
        if self.is_singular:
            warnings.warn("boundary (singular) fit: see jaxmm's is_singular", SingularFitWarning, 2)
        for w in opt.warnings:
            warnings.warn(w, ConvergenceWarning, 2)

    # ----- parameters --------------------------------------------------------------------
    @cached_property
    def fixef(self) -> pd.Series:
        """Fixed-effects estimates, on the link scale, named as lme4.

        Example:
            >>> g.fixef.round(3).to_dict()
            {'(Intercept)': -1.399, 'period2': -0.992, 'period3': -1.129, 'period4': -1.58}
        """
        return pd.Series(np.asarray(self.opt.beta), index=list(self.design.x_names), name="fixef")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects. As lme4's ``vcov`` (use.hessian=TRUE): the beta
        block of ``2 H^{-1}``, H the Hessian of the deviance over (theta, beta) at the optimum;
        from the PIRLS factor (lme4's ``unsc()``) for nagq = 0 or when H is not positive
        definite.

        Example:
            >>> g.vcov.shape
            (4, 4)
            >>> g.vcov.round(3).iloc[:2, :2].values.tolist()
            [[0.054, -0.026], [-0.026, 0.094]]
        """
        nt, names = self.opt.theta.size, list(self.design.x_names)
        V = None
        if self.nagq > 0 and self.opt.hessian is not None:
            try:
                Vh = 2.0 * np.linalg.inv(self.opt.hessian)[nt:, nt:]
                Vh = 0.5 * (Vh + Vh.T)
                if np.all(np.isfinite(Vh)) and np.min(np.linalg.eigvalsh(Vh)) > 0:
                    V = Vh
            except np.linalg.LinAlgError:
                V = None
        if V is None:
            rz = self.gdesign.layout.rz
            L = np.asarray(self.fit.factor_ub.L22)[rz:, rz:]
            Li = np.linalg.inv(L)
            V = Li.T @ Li
        return pd.DataFrame(V, index=names, columns=names)

    @cached_property
    def stderr(self) -> pd.Series:
        """Standard errors of the fixed effects (from :attr:`vcov`).

        Example:
            >>> g.stderr.round(2).to_dict()
            {'(Intercept)': 0.23, 'period2': 0.31, 'period3': 0.33, 'period4': 0.43}
        """
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.fixef.index, name="stderr")

    def coef_table(self) -> pd.DataFrame:
        """Estimate, Std. Error, z value, Pr(>|z|) (lme4's ``coef(summary(m))``).

        Example:
            >>> g.coef_table()[["Estimate", "Std. Error", "z value"]].round(2)
                         Estimate  Std. Error  z value
            (Intercept)     -1.40        0.23    -6.0...
            period2         -0.99        0.31    -3.24
            period3         -1.13        0.33    -3.46
            period4         -1.58        0.43    -3.70
        """
        est, se = self.fixef.to_numpy(), self.stderr.to_numpy()
        z = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2.0 * stats.norm.sf(np.abs(z))}, index=self.fixef.index)

    # ----- criteria ----------------------------------------------------------------------
    @property
    def objective(self) -> float:
        """The minimized criterion: -2 log-likelihood (Laplace or AGQ; lme4's minus2logLik).

        Example:
            >>> round(g.objective, 3)
            184.053
            >>> g.minus2loglik == g.objective   # the same property
            True
        """
        return float(self.opt.fmin)

    minus2loglik = objective


    @property
    def dof(self) -> int:
        """Number of parameters: fixed effects + theta (no scale parameter).

        Example:
            >>> g.dof
            5
        """
        return self.p + int(self.opt.theta.size)




    @property
    def deviance(self) -> float:
        """lme4's ``deviance(m)``: the sum of squared deviance residuals at the modes.

        Example:
            >>> round(g.deviance, 3)
            73.472
        """
        return float(np.sum(self._devres))

    # ----- linear predictor and residuals -------------------------------------------------
    @cached_property
    def _modes(self) -> list[np.ndarray]:
        out, s = [], 0
        u = np.asarray(self.fit.u)
        for t, T in zip(self.terms, self._Ts):
            out.append(u[s : s + t.nlevels * t.q].reshape(t.nlevels, t.q) @ T.T)
            s += t.nlevels * t.q
        return out

    @cached_property
    def _eta(self) -> np.ndarray:
        eta = np.asarray(self.gdesign.resp.offset) + self.design.X @ self.fixef.to_numpy()
        for t, b in zip(self.terms, self._modes):
            eta = eta + np.einsum("ic,ic->i", t.Xt, b[t.index])
        return eta

    def _family_eval(self, fn, eta):
        with compute():
            return np.asarray(fn(jnp.asarray(eta)))

    @cached_property
    def _mu(self) -> np.ndarray:
        return self._family_eval(self.family.mu, self._eta)

    @cached_property
    def _devres(self) -> np.ndarray:
        r = self.gdesign.resp
        with compute():
            rr = type(r)(*(jnp.asarray(a) for a in r))
            return np.asarray(self.family.dev_resid(jnp.asarray(self._eta), rr))

    def fitted(self, type: str = "response") -> np.ndarray:
        """Fitted values on the response scale (mu; a proportion for binomial) or the link
        scale (eta), conditional on the random-effects modes.

        Example:
            >>> g.fitted()[:3].round(3).tolist()          # proportions
            [0.308, 0.142, 0.126]
            >>> g.fitted("link")[:3].round(3).tolist()    # logits
            [-0.809, -1.801, -1.937]
        """
        if type == "response":
            return self._mu.copy()
        if type == "link":
            return self._eta.copy()
        raise DataError(f"type must be 'response' or 'link', got {type!r}")

    def residuals(self, type: str = "deviance") -> np.ndarray:
        """Residuals of type "deviance" (lme4's default), "pearson", "response" or "working".

        Example:
            >>> g.residuals()[:3].round(3).tolist()
            [-1.438, 0.989, 2.357]
            >>> g.residuals("pearson")[:3].round(3).tolist()
            [-1.34, 1.075, 2.88]
        """
        r = self.gdesign.resp
        y, wt, mu = np.asarray(r.y), np.asarray(r.wt), self._mu
        if type == "response":
            return y - mu
        if type == "deviance":
            return np.sign(y - mu) * np.sqrt(np.maximum(self._devres, 0.0))
        if type == "pearson":
            var = mu * (1 - mu) if self.family.name == "binomial" else mu
            return (y - mu) * np.sqrt(wt) / np.sqrt(var)
        if type == "working":
            return (y - mu) / self._family_eval(self.family.link.mu_eta, self._eta)
        raise DataError(f"residual type must be one of {RESIDUAL_TYPES}, got {type!r}")

    # ----- variance components and random effects ---------------------------------------
    def varcorr(self) -> pd.DataFrame:
        """Variance components as ``as.data.frame(VarCorr(m))`` (no residual row: sigma = 1).

        Example:
            >>> g.varcorr()[["grp", "var1", "vcov", "sdcor"]].round(4)
                grp         var1    vcov   sdcor
            0  herd  (Intercept)  0.4125  0.6423
        """
        covs = [T @ T.T for T in self._Ts]
        vc = varcorr_frame([t.group for t in self.terms], [t.cnames for t in self.terms], covs, 1.0)
        return vc[vc["grp"] != "Residual"].reset_index(drop=True)

    @cached_property
    def _condcov(self) -> list[np.ndarray]:
        """Diagonal blocks of Lambda (L L')^{-1} Lambda' per level of every term."""
        F, lay = self.fit.factor_u, self.gdesign.layout
        L11 = np.asarray(F.L11)
        Li = np.asarray(F.L11inv)
        n1, q1 = L11.shape[0], L11.shape[1]
        inner = np.broadcast_to(np.eye(q1), (n1, q1, q1)).copy()
        out = []
        rz = lay.rz
        if rz:
            L22 = np.asarray(F.L22)
            L21 = np.asarray(F.L21)
            V = sl.solve_triangular(L22, L21, lower=True).reshape(rz, n1, q1)
            inner += np.einsum("ajc,ajd->jcd", V, V)
        cu = np.einsum("jba,jbc,jcd->jad", Li, inner, Li)
        out.append(np.einsum("ab,jbc,dc->jad", self._Ts[0], cu, self._Ts[0]))
        if rz:
            Linv = sl.solve_triangular(L22, np.eye(rz), lower=True)
            s = 0
            for t, T in zip(self.terms[1:], self._Ts[1:]):
                cols = Linv[:, s : s + t.nlevels * t.q].reshape(rz, t.nlevels, t.q)
                out.append(np.einsum("ab,nbc,dc->nad", T, np.einsum("anq,anr->nqr", cols, cols), T))
                s += t.nlevels * t.q
        return out

    # ----- display -----------------------------------------------------------------------
    def summary(self) -> str:
        """lme4's ``summary(glmerMod)`` as text.

        Example:
            >>> print(g.summary())
            Generalized linear mixed model fit by maximum likelihood (Laplace Approximation) ['glmerMod']
             Family: binomial  ( logit )
            Formula: cbind(incidence, size - incidence) ~ period + (1 | herd)
            <BLANKLINE>
              AIC   BIC logLik deviance df.resid
            194.1 204.2  -92.0    184.1       51
            ...
            Fixed effects:
                        Estimate Std. Error z value Pr(>|z|)
            (Intercept)  -1.3985     0.232...  -6.01... ***
            period2      -0.9923     0.306...  -3.236  0.00121  **
            period3      -1.1287     0.3266  -3.455 0.00055... ***
            period4      -1.5803     0.4274  -3.697 0.000218 ***
            ...
        """
        from .summary_glmm import format_glmm_summary

        return format_glmm_summary(self)

    def __repr__(self) -> str:
        return self.summary()
