"""What every fitted mixed model (linear or generalized) shares: sizes, names, the
covariance parameters theta and their relative factors."""

from __future__ import annotations

from functools import cached_property

import math

import numpy as np
import pandas as pd

from ..covariance import Unstructured


class FitBasics:
    """Mixed into LinearMixedModel and GeneralizedLinearMixedModel (``design`` and ``opt``
    attributes); examples use ``m``, the sleepstudy fit of LinearMixedModel's docstring."""

    # ----- sizes and names -------------------------------------------------------------
    @property
    def formula(self) -> str:
        """The model formula, as given.

        Example:
            >>> m.formula
            'Reaction ~ Days + (Days|Subject)'
        """
        return self.design.formula.text

    @property
    def nobs(self) -> int:
        """Number of observations used (rows, after dropping incomplete ones; a binomial row
        counts once, whatever its trials).

        Example:
            >>> m.nobs
            180
        """
        return int(self.design.X.shape[0])

    @property
    def n_dropped(self) -> int:
        """Rows dropped because a used column had a missing value.

        Example:
            >>> m.n_dropped
            0
        """
        return int(self.design.n_dropped_rows)

    @property
    def p(self) -> int:
        """Number of fixed-effects columns (after dropping aliased ones).

        Example:
            >>> m.p
            2
        """
        return int(self.design.X.shape[1])

    @property
    def terms(self):
        """The random-effects terms (grouping factor, columns, levels...), lme4's order.

        Example:
            >>> [(t.group, t.cnames, t.nlevels) for t in m.terms]
            [('Subject', ('(Intercept)', 'Days'), 18)]
        """
        return self.design.terms

    @property
    def ngroups(self) -> dict[str, int]:
        """Levels per grouping factor (one entry per distinct factor, lme4's order).

        Example:
            >>> m.ngroups
            {'Subject': 18}
        """
        out: dict[str, int] = {}
        for t in self.terms:
            out.setdefault(t.group, t.nlevels)
        return out

    # ----- covariance parameters -------------------------------------------------------
    @property
    def theta_vector(self) -> np.ndarray:
        """theta as a plain array (lme4's order).

        Example:
            >>> m.theta_vector.round(4).tolist()
            [0.9667, 0.0152, 0.2309]
        """
        return np.array(self.opt.theta, dtype=float)

    @cached_property
    def theta(self) -> pd.Series:
        """Relative covariance factor parameters, named as lme4's ``getME(m, "theta")``.

        Example:
            >>> m.theta.round(4).to_dict()
            {'Subject.(Intercept)': 0.9667, 'Subject.Days.(Intercept)': 0.0152, 'Subject.Days': 0.2309}
        """
        names = []
        for t in self.terms:
            names += Unstructured(t.q).names(t.group, t.cnames)
        return pd.Series(np.asarray(self.opt.theta, dtype=float), index=names, name="theta")

    @property
    def lower(self) -> np.ndarray:
        """lme4's lower bounds of theta (0 on diagonals, -inf elsewhere).

        Example:
            >>> m.lower.tolist()
            [0.0, -inf, 0.0]
        """
        return np.concatenate([Unstructured(t.q).lower for t in self.terms])

    @cached_property
    def _Ts(self) -> list[np.ndarray]:
        out, start = [], 0
        for t in self.terms:
            cov = Unstructured(t.q)
            out.append(cov.T_numpy(self.opt.theta[start : start + cov.n_theta]))
            start += cov.n_theta
        return out

    @property
    def is_singular(self) -> bool:
        """lme4's isSingular: a diagonal of some T below 1e-4 (a boundary fit).

        Example:
            >>> m.is_singular
            False
        """
        diag = np.concatenate([Unstructured(t.q).is_diag for t in self.terms])
        return bool(np.any(np.asarray(self.opt.theta)[diag] < 1e-4))

    # ----- criteria (objective and dof come from each model class) ------------------------
    @property
    def loglik(self) -> float:
        """Log-likelihood, -objective / 2 (the REML log-likelihood for REML fits, as lme4's
        logLik; the Laplace or AGQ approximation for GLMMs).

        Example:
            >>> round(m.loglik, 3)
            -871.814
        """
        return -0.5 * self.objective

    @property
    def aic(self) -> float:
        """Akaike's information criterion, -2 loglik + 2 dof.

        Example:
            >>> round(m.aic, 3)
            1755.628
        """
        return -2.0 * self.loglik + 2.0 * self.dof

    @property
    def bic(self) -> float:
        """Bayesian information criterion, -2 loglik + dof log(nobs).

        Example:
            >>> round(m.bic, 3)
            1774.786
        """
        return -2.0 * self.loglik + self.dof * math.log(self.nobs)

    @property
    def df_resid(self) -> int:
        """Residual degrees of freedom, nobs - dof.

        Example:
            >>> m.df_resid
            174
        """
        return self.nobs - self.dof

    # ----- conditional modes ---------------------------------------------------------------
    def ranef(self, condvar: bool = True) -> pd.DataFrame:
        """Conditional modes as ``as.data.frame(ranef(m, condVar=TRUE))``:
        grpvar, term, grp, condval, condsd (one row per level and column of each term;
        ``_modes`` and ``_condcov`` come from each model class).

        Example:
            >>> m.ranef().head(2).round(3)
                grpvar         term  grp  condval  condsd
            0  Subject  (Intercept)  308    2.259  12.071
            1  Subject  (Intercept)  309  -40.399  12.071
        """
        frames = []
        for k, t in enumerate(self.terms):
            b = self._modes[k]
            sd = np.sqrt(np.einsum("jcc->jc", self._condcov[k])) if condvar else None
            for c, cname in enumerate(t.cnames):
                frames.append(pd.DataFrame({
                    "grpvar": t.group, "term": cname, "grp": list(t.levels),
                    "condval": b[:, c],
                    **({"condsd": sd[:, c]} if condvar else {}),
                }))
        return pd.concat(frames, ignore_index=True)
