"""Prediction and simulation methods of
:class:`~jaxmm.results.glmm.GeneralizedLinearMixedModel`."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataError


class GlmmWorkflowMethods:
    """Mixed into GeneralizedLinearMixedModel; examples use ``g``, the cbpp fit of its docstring."""

    # ----- prediction and simulation -----------------------------------------------------
    def predict(self, newdata: pd.DataFrame | None = None, type: str = "link", re_form=None,
                allow_new_levels: bool = False, offset=None) -> np.ndarray:
        """Predictions (lme4's ``predict``): ``type`` "link" or "response"; ``re_form=None``
        includes every random effect, ``re_form="~0"`` (or NA) none; new levels of a grouping
        factor predict at the population level when ``allow_new_levels``.

        Example:
            >>> bool(np.allclose(g.predict(type="response"), g.fitted()))
            True
        """
        if type not in ("link", "response"):
            raise DataError(f"type must be 'link' or 'response', got {type!r}")
        use_re = re_form is None
        if not use_re and str(re_form).replace(" ", "") not in ("~0", "0", "NA", "nan", "None"):
            raise DataError(f"re_form must be None (all random effects) or '~0' (none), got {re_form!r}")
        if newdata is None:
            if use_re:
                eta = self._eta
            else:
                eta = np.asarray(self.gdesign.resp.offset) + self.design.X @ self.fixef.to_numpy()
        else:
            spec = self.design.spec
            eta = spec.fixed_matrix(newdata) @ self.fixef.to_numpy()
            for e in self.gdesign.offset_exprs:
                from ..design.matrix import materialize

                eta = eta + materialize(f"0 + I({e})", newdata).matrix[:, 0]
            if offset is None and getattr(self.gdesign, "offset_arg", False):
                raise DataError(
                    "this model was fitted with glmer(offset=...): pass the offset for the new "
                    "rows too, predict(newdata, offset=...) (or write offset(...) in the formula)"
                )
            if offset is not None:
                offset = np.asarray(offset, float).reshape(-1)
                if offset.shape[0] != len(newdata):
                    raise DataError(f"offset= has {offset.shape[0]} values; newdata has {len(newdata)} rows")
                eta = eta + offset
            if use_re:
                for (idx, Xt), b in zip(spec.term_matrices(newdata, allow_new_levels), self._modes):
                    bb = np.where((idx >= 0)[:, None], b[np.maximum(idx, 0)], 0.0)
                    eta = eta + np.einsum("ic,ic->i", Xt, bb)
        return eta if type == "link" else self._family_eval(self.family.mu, eta)

    def simulate(self, nsim: int = 1, seed: int | None = None, use_u: bool = False) -> np.ndarray:
        """Simulated responses (nsim, nobs) on the model's response scale (binomial: the
        proportion of successes out of the trials; Poisson: counts), drawing new random
        effects from their fitted distribution (lme4's default) or keeping the modes
        (``use_u=True``).

        Example:
            >>> y = g.simulate(2, seed=1)
            >>> y.shape
            (2, 56)
            >>> bool(((0 <= y) & (y <= 1)).all())   # proportions
            True
        """
        rng = np.random.default_rng(seed)
        r = self.gdesign.resp
        base = np.asarray(r.offset) + self.design.X @ self.fixef.to_numpy()
        out = np.empty((nsim, self.nobs))
        for s in range(nsim):
            eta = base.copy()
            for t, T, b in zip(self.terms, self._Ts, self._modes):
                bs = b if use_u else rng.standard_normal((t.nlevels, t.q)) @ T.T
                eta = eta + np.einsum("ic,ic->i", t.Xt, bs[t.index])
            mu = self._family_eval(self.family.mu, eta)
            if self.family.name == "binomial":
                m = np.asarray(r.wt).round().astype(np.int64)
                k = rng.binomial(np.maximum(m, 0), np.clip(mu, 0, 1))
                out[s] = np.where(m > 0, k / np.maximum(m, 1), 0.0)
            else:
                out[s] = rng.poisson(mu)
        return out
