"""Parametric bootstrap (lme4's ``bootMer``) as one compiled, vectorized computation.

Each replicate simulates a response from the fitted model (new random effects and noise,
``use_u=False``, as lme4's default) and refits the model to it, starting at the fitted
theta. Simulation, crossproducts and fits run in one jit-compiled program per chunk of
replicates; replicate ``i`` is fitted to ``model.simulate(nsim, seed)[i]`` whatever the
chunk size.

Example:
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> boot = m.bootstrap(20, seed=1)
    >>> boot.table.shape[0], bool(boot.table["converged"].all())
    (20, True)
    >>> list(boot.confint().columns)
    ['2.5 %', '97.5 %']
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ..errors import ModelError
from ..precision import compute, enable_compilation_cache
from .chunks import run_chunks
from .fit import REPLICATE_MAXITER, bootstrap_program, start_theta
from .intervals import normal_interval, pct_label, percentile_interval, shortest_interval
from .params import vc_columns, vc_names
from .simulate import base_key, check_nsim, sim_model
from .table import lane_table, warn_unconverged

METHODS = ("percentile", "shortest", "normal")


@dataclass
class Bootstrap:
    """Replicates of a parametric bootstrap.

    Attributes:
        table: one row per replicate (see :mod:`jaxmm.batch.table` for the columns).
        estimate: the original fit's values of the parameters, lme4's names (sd/cor per
            term, ``sigma``, fixed effects).
        seed: the seed used (replicate ``i`` is reproducible from it).
        use_u: whether random effects were held at their conditional modes.
    """

    table: pd.DataFrame
    estimate: pd.Series
    seed: int | None
    use_u: bool = False

    @property
    def nsim(self) -> int:
        return int(self.table.shape[0])

    @property
    def parameters(self) -> list[str]:
        """lme4's parameter names, in ``confint``'s order."""
        return list(self.estimate.index)

    @property
    def n_failed(self) -> int:
        """Replicates that did not converge (iteration cap or non-finite criterion)."""
        return int((~self.table["converged"]).sum())

    @property
    def se(self) -> pd.Series:
        """Bootstrap standard errors (standard deviation over replicates) of each parameter."""
        return self.table[self.parameters].std(ddof=1).rename("boot SE")

    def confint(self, level: float = 0.95, method: str = "percentile") -> pd.DataFrame:
        """Bootstrap confidence intervals, one row per parameter (lme4's names and order:
        ``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``, ..., ``sigma``, fixed
        effects), columns ``"2.5 %"`` and ``"97.5 %"`` (for ``level=0.95``).

        ``method``: ``"percentile"`` (R's boot.ci rule), ``"shortest"`` (shortest interval
        holding ``level`` of the replicates) or ``"normal"`` (bias-corrected normal).
        Replicates with a non-finite value (a correlation of a zero standard deviation)
        are left out of that parameter's interval.

        Example:
            >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
            >>> ci = m.bootstrap(50, seed=3).confint(0.9, method="shortest")
            >>> list(ci.index), list(ci.columns)
            (['sd_(Intercept)|Batch', 'sigma', '(Intercept)'], ['5 %', '95 %'])
        """
        if not (isinstance(level, (float, int)) and 0.0 < float(level) < 1.0):
            raise ModelError(f"level must be a probability between 0 and 1, got {level!r}")
        if method not in METHODS:
            raise ModelError(f"unknown bootstrap interval method {method!r}; use one of {METHODS}")
        rows = []
        for nm in self.parameters:
            t = self.table[nm].to_numpy(float)
            if method == "percentile":
                rows.append(percentile_interval(t, level))
            elif method == "shortest":
                rows.append(shortest_interval(t, level))
            else:
                rows.append(normal_interval(t, level, float(self.estimate[nm])))
        a = (1.0 - level) / 2.0
        return pd.DataFrame(rows, index=self.parameters, columns=[pct_label(a), pct_label(1 - a)])

    def __repr__(self) -> str:
        return (f"Bootstrap({self.nsim} replicates, seed={self.seed}, "
                f"{self.n_failed} not converged, {int(self.table['singular'].sum())} singular)")


def model_estimate(model) -> pd.Series:
    """The fitted model's parameters under lme4's confint names."""
    vc = vc_columns(model.terms, model.theta_vector[None, :], np.array([model.sigma]))
    vals = {nm: float(vc[nm][0]) for nm in vc_names(model.terms)}
    vals["sigma"] = float(model.sigma)
    vals.update(model.fixef.to_dict())
    return pd.Series(vals, name="estimate")


def bootstrap(model, nsim: int = 1000, seed=None, *, use_u: bool = False,
              batch_size: int | None = None, progress=None,
              maxiter: int = REPLICATE_MAXITER, gtol: float = 1e-7) -> Bootstrap:
    """Parametric bootstrap of a fitted linear mixed model (lme4's ``bootMer``).

    Args:
        model: a fitted :class:`jaxmm.LinearMixedModel`.
        nsim: number of replicates.
        seed: int seed (None: a fresh one, kept in the result).
        use_u: hold the random effects at their conditional modes (lme4's ``use.u``).
        batch_size: replicates per compiled chunk (default: up to 1000, fewer for big
            models so that a chunk's memory stays bounded).
        progress: tqdm progress bar over chunks (None: when there are several chunks and
            tqdm is installed; True: always, error without tqdm; False: never).
        maxiter: iteration cap of each replicate's optimizer (replicates reaching it are
            flagged ``converged=False``, status 2).
        gtol: absolute gradient tolerance (a relative one of 1e-7 also applies).
    """
    from ..results.guards import require_lmm

    require_lmm(model, "bootstrap")
    enable_compilation_cache()  # a model loaded from disk has not passed through lmer()
    nsim = check_nsim(nsim)
    key, used_seed = base_key(seed)
    sim, nlev = sim_model(model, use_u)
    lay, blocks = model.devfun.layout, model.devfun.blocks
    theta0 = start_theta(model.theta_vector, lay)
    lane_bytes = 8 * (6 * lay.r * lay.r + 4 * model.nobs + 8 * lay.l1 * lay.q1 * lay.q1)

    def run(idx):
        return bootstrap_program(key, jnp.asarray(idx), sim, nlev, jnp.asarray(theta0), blocks, lay,
                                 model.reml, int(maxiter), float(gtol))

    with compute():
        lanes = run_chunks(run, nsim, batch_size, bytes_per_lane=lane_bytes,
                           progress=progress, desc="bootstrap", shard=True)
    table = lane_table(lanes, model.terms, list(model.design.x_names), model.nobs, model.reml)
    warn_unconverged(table, "bootstrap replicates")
    return Bootstrap(table=table, estimate=model_estimate(model), seed=used_seed, use_u=use_u)
