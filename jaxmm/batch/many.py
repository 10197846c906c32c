"""Many responses on one design, fitted as one batched computation (genes, voxels...).

``refit_many(model, Y)`` refits a fitted model to each column of Y (lme4's ``refit`` with
a new response, batched); :func:`lmer_many` builds the design once from a formula and fits
every listed response column. Rows with a missing value in any of the responses (or in a
model variable) are dropped for all of them, so that they share one design.

Example:
    >>> df = jaxmm.datasets.load("sleepstudy")
    >>> df["R2"] = 2 * df["Reaction"]
    >>> res = jaxmm.lmer_many("y ~ Days + (Days|Subject)", df, responses=["Reaction", "R2"])
    >>> round(float(res.table["sigma"]["R2"] / res.table["sigma"]["Reaction"]), 6)
    2.0
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import DataError, DroppedRowsWarning
from ..precision import compute
from .chunks import run_chunks
from .fit import REPLICATE_MAXITER, fit_many_program, start_theta
from .responses import ResponseMap
from .table import lane_table, warn_unconverged


@dataclass
class ManyFits:
    """Fits of many responses on one design.

    Attributes:
        table: one row per response (indexed by its name), columns as a bootstrap table.
        design: the shared design (its ``y`` is the first response).
        Y: (nobs, k) the responses on the rows used.
        reml: REML or ML.
    """

    table: pd.DataFrame
    design: object
    Y: np.ndarray
    reml: bool

    def __len__(self) -> int:
        return int(self.Y.shape[1])

    def model(self, which):
        """The full :class:`jaxmm.LinearMixedModel` of one response (by name or position),
        refitted alone from its batched estimate (summary, ranef, vcov ...)."""
        from ..pipeline import mk_devfun
        from ..optimize.lmm import run_fit
        from ..results.lmm import LinearMixedModel

        pos = self.table.index.get_loc(which) if not isinstance(which, (int, np.integer)) else int(which)
        design = dataclasses.replace(self.design, y=np.ascontiguousarray(self.Y[:, pos]),
                                     response=str(self.table.index[pos]))
        devfun = mk_devfun(design, self.reml)
        theta = self.table.iloc[pos][[c for c in self._theta_cols]].to_numpy(float)
        res, opt = run_fit(devfun, start_theta(theta, devfun.layout))
        return LinearMixedModel(design, devfun, opt, estimates=res.estimates)

    @property
    def _theta_cols(self) -> list[str]:
        from .params import theta_names

        return theta_names(self.design.terms)

    def __repr__(self) -> str:
        return (f"ManyFits({len(self)} responses, {int((~self.table['converged']).sum())} "
                f"not converged, {int(self.table['singular'].sum())} singular)")


def _as_matrix(Y, nobs: int) -> tuple[np.ndarray, list]:
    names = None
    if isinstance(Y, pd.DataFrame):
        names = [str(c) for c in Y.columns]
        Y = Y.to_numpy()
    elif isinstance(Y, pd.Series):
        names = [str(Y.name) if Y.name is not None else "0"]
        Y = Y.to_numpy()[:, None]
    try:
        Y = np.asarray(Y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise DataError(f"responses must be numeric: {e}") from None
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2 or Y.shape[0] != nobs:
        raise DataError(f"responses must have {nobs} rows (one per observation used in the "
                        f"fit), one column per response; got shape {Y.shape}")
    if not np.isfinite(Y).all():
        bad = np.flatnonzero(~np.isfinite(Y).all(axis=0))
        raise DataError(f"responses have non-finite values (columns at positions {bad[:5].tolist()})")
    return Y, names or list(range(Y.shape[1]))


def fit_many(design, devfun, Y: np.ndarray, names, theta0, *, batch_size=None, progress=None,
             maxiter: int = REPLICATE_MAXITER, gtol: float = 1e-7) -> pd.DataFrame:
    """Fit each column of Y on ``design`` (crossproducts in ``devfun``); the lane table."""
    lay, blocks, reml = devfun.layout, devfun.blocks, devfun.reml
    rmap = ResponseMap.from_design(design)
    theta0 = np.asarray(theta0, np.float64)
    Yt = np.ascontiguousarray(Y.T)
    lane_bytes = 8 * (6 * lay.r * lay.r + 4 * Y.shape[0] + 8 * lay.l1 * lay.q1 * lay.q1)

    def run(idx):
        return fit_many_program(jnp.asarray(theta0), jnp.asarray(Yt[idx]), blocks, rmap, lay, reml,
                                int(maxiter), float(gtol))

    with compute():
        lanes = run_chunks(run, Y.shape[1], batch_size, bytes_per_lane=lane_bytes,
                           progress=progress, desc="fits")
    table = lane_table(lanes, design.terms, list(design.x_names), design.nobs, reml,
                       index=pd.Index(names, name="response"))
    warn_unconverged(table, "fits")
    return table


def refit_many(model, Y, *, batch_size=None, progress=None, maxiter: int = REPLICATE_MAXITER,
               gtol: float = 1e-7) -> ManyFits:
    """Refit ``model`` to each column of Y (nobs x k; a DataFrame's column names label the
    rows of the result), starting at the model's theta."""
    from ..results.guards import require_lmm

    require_lmm(model, "refit_many")
    Y, names = _as_matrix(Y, model.nobs)
    theta0 = start_theta(model.theta_vector, model.devfun.layout)
    table = fit_many(model.design, model.devfun, Y, names, theta0, batch_size=batch_size,
                     progress=progress, maxiter=maxiter, gtol=gtol)
    return ManyFits(table=table, design=model.design, Y=Y, reml=model.reml)


def lmer_many(formula: str, data: pd.DataFrame, responses, reml: bool = True, *,
              start=None, batch_size: int | None = None, progress=None,
              maxiter: int = REPLICATE_MAXITER) -> ManyFits:
    """Fit one linear mixed model to each of many response columns of ``data``.

    The formula's left-hand side is a placeholder (``"y ~ x + (1|g)"``): each column named
    in ``responses`` takes its place. The design is built once; the fits run batched.
    ``start``: theta in lme4's order (default: every T = identity, lme4's start).

    Example:
        >>> import numpy as np
        >>> df = jaxmm.datasets.load("sleepstudy")
        >>> rng = np.random.default_rng(0)
        >>> for g in range(3):
        ...     df[f"gene{g}"] = df["Reaction"] + rng.normal(0, 10, len(df))
        >>> res = jaxmm.lmer_many("y ~ Days + (1|Subject)", df, [f"gene{g}" for g in range(3)])
        >>> res.table[["objective", "Days", "converged"]].shape
        (3, 3)
    """
    from ..pipeline import lformula, mk_devfun
    from ..optimize.lmm import default_theta0

    if isinstance(responses, str):
        responses = [responses]
    responses = list(responses)
    if not responses:
        raise DataError("responses is empty: name at least one response column")
    missing = [r for r in responses if r not in data.columns]
    if missing:
        raise DataError(f"response columns not in the data: {missing[:5]}")
    if "~" not in formula:
        raise DataError(f"formula {formula!r} has no '~'")
    rhs = formula.split("~", 1)[1]
    tmp = "jaxmm_response_"
    incomplete = data[responses].isna().any(axis=1).to_numpy()
    if incomplete.any():
        warnings.warn(f"{int(incomplete.sum())} rows with a missing value in some response "
                      "are dropped for all responses", DroppedRowsWarning, 2)
    frame = data.loc[~incomplete].assign(**{tmp: data.loc[~incomplete, responses[0]]})
    design = lformula(f"{tmp} ~ {rhs}", frame)
    design = dataclasses.replace(design, response=responses[0])
    Y = frame[responses].to_numpy()[design.rows]
    Y, names = _as_matrix(Y, design.nobs)
    devfun = mk_devfun(design, reml)
    theta0 = default_theta0(devfun.layout) if start is None else np.asarray(start, float)
    if theta0.shape != (devfun.layout.n_theta,):
        raise DataError(f"start must have {devfun.layout.n_theta} values (theta, lme4's order)")
    table = fit_many(design, devfun, Y, responses, start_theta(theta0, devfun.layout),
                     batch_size=batch_size, progress=progress, maxiter=maxiter)
    return ManyFits(table=table, design=design, Y=Y, reml=reml)
