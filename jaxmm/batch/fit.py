"""One compiled program fitting a batch of responses on one design (vmap over y only).

Each lane runs the same steps as :func:`jaxmm.optimize.lmm.fit_program` — L-BFGS on
unconstrained theta, column signs normalized, numerically-zero diagonals snapped to exactly
zero when that does not raise the criterion, then beta and sigma there — but without the
Hessian: replicates need estimates, not convergence diagnostics, and a Hessian per lane
would add batched LAPACK calls that XLA's CPU pool may run concurrently (a deadlock risk)
and, near singular fits, straggler lanes. Every lane's iterations are capped (``maxiter``);
a lane that hits the cap or ends non-finite is flagged, never raised, and the batch goes on.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.layout import Blocks, Layout, with_response
from ..core.logchol import LEAF
from ..core.solve import estimates
from ..optimize.lmm import SINGULAR_TOL, column_signs, diag_mask
from .compiled import batch_jit
from .lane import lane_objective, lbfgs
from .responses import ResponseMap, batch_crossproducts
from .simulate import SimModel, simulate_batch

#: Default iteration cap of one replicate (a single fit's default is 1000).
REPLICATE_MAXITER = 300
#: Rest blocks larger than this are fitted lane after lane (``lax.map``), not vmapped.
SEQUENTIAL_R = LEAF


class LaneFit(NamedTuple):
    """One lane's result (a pytree; a batch has a leading axis on every leaf).

    Attributes:
        theta: (n_theta,) estimate, lme4's order, diagonals >= 0.
        fun: criterion at ``theta`` (REML criterion or ML deviance).
        beta: (p,) fixed effects.
        pwrss: penalized residual sum of squares (sigma^2 = pwrss / (n - p*reml)).
        status: the optimizer's status (0, 1 converged; 2 iteration cap; 3 non-finite).
        n_iter: L-BFGS iterations.
        max_grad: largest |gradient| over the parameters not on the boundary.
        RX: (p, p) Cholesky factor of the fixed-effects block (vcov = sigma^2 (RX RX')^-1).
    """

    theta: jnp.ndarray
    fun: jnp.ndarray
    beta: jnp.ndarray
    pwrss: jnp.ndarray
    status: jnp.ndarray
    n_iter: jnp.ndarray
    max_grad: jnp.ndarray
    RX: jnp.ndarray


def start_theta(theta: np.ndarray, layout: Layout, floor: float = 0.05) -> np.ndarray:
    """A refit's start: the fitted theta with diagonals raised to at least ``floor`` (the
    criterion's gradient vanishes at a zero diagonal, so a start there never leaves it)."""
    theta = np.asarray(theta, np.float64).copy()
    diag = diag_mask(layout)
    theta[diag] = np.maximum(np.abs(theta[diag]), floor)
    return theta


def _criterion(est, n, p: int, reml: bool):
    """REML criterion or ML deviance from the conditional estimates (as core.objective)."""
    N = n - (p if reml else 0)
    ld = est.ldL2 + (est.ldRX2 if reml else 0.0)
    return ld + N * jnp.log(est.pwrss) + N * (1.0 + jnp.log(2.0 * math.pi / N))


def fit_lane(theta0, blocks: Blocks, layout: Layout, reml: bool, maxiter: int, gtol: float) -> LaneFit:
    """Fit one response (its crossproducts already in ``blocks``)."""
    fun = lambda t: lane_objective(t, blocks, layout, reml)  # noqa: E731
    sol = lbfgs(fun, theta0, maxiter=maxiter, gtol=gtol)
    theta = sol.x * column_signs(sol.x, layout)
    diag = jnp.asarray(diag_mask(layout))
    tiny = diag & (jnp.abs(theta) < SINGULAR_TOL)
    snapped = jnp.where(tiny, 0.0, theta)
    # Estimates at the snapped and the unsnapped theta in one (inner) batch: one copy of the
    # code; the criterion is read off the estimates.
    est2 = jax.vmap(lambda t: estimates(t, blocks, layout, batched=True))(
        jnp.stack([snapped, theta]))
    f2 = _criterion(est2, blocks.n, layout.p, reml)
    accept = jnp.any(tiny) & (f2[0] <= sol.fun + 1e-10 * jnp.maximum(1.0, jnp.abs(sol.fun)))
    pick = jnp.where(accept, 0, 1)
    est = jax.tree_util.tree_map(lambda a: a[pick], est2)
    theta = jnp.where(accept, snapped, theta)
    free = ~(tiny & accept)
    max_grad = jnp.max(jnp.where(free, jnp.abs(sol.grad), 0.0))
    return LaneFit(
        theta=theta, fun=jnp.where(accept, f2[0], sol.fun), beta=est.beta, pwrss=est.pwrss,
        status=sol.status, n_iter=sol.n_iter, max_grad=max_grad, RX=est.RX,
    )


def fit_responses(theta0, Y, blocks: Blocks, rmap: ResponseMap, layout: Layout, reml: bool,
                  maxiter: int, gtol: float) -> LaneFit:
    """Fit every response in Y (B, n) on the design of ``blocks``; a batch of LaneFit."""
    C1y, Ay = batch_crossproducts(Y, rmap, layout)

    def one(c1y, ay):
        return fit_lane(theta0, with_response(blocks, layout, c1y, ay), layout, reml, maxiter, gtol)

    if layout.r > SEQUENTIAL_R:
        # Large dense blocks: lanes one after another. The gradient's triangular inverse
        # splits into independent halves above logchol.LEAF rows; batched, those are two
        # concurrent batched LAPACK calls, which can deadlock XLA's CPU pool (DESIGN.md).
        return jax.lax.map(lambda a: one(*a), (C1y, Ay))
    return jax.vmap(one)(C1y, Ay)


_STATIC = ("layout", "reml", "maxiter", "nlevels")


@partial(batch_jit, static_argnames=("layout", "reml", "maxiter"))
def fit_many_program(theta0, Y, blocks, rmap, layout, reml, maxiter, gtol) -> LaneFit:
    """Jit-compiled :func:`fit_responses`."""
    return fit_responses(theta0, Y, blocks, rmap, layout, reml, maxiter, gtol)


@partial(batch_jit, static_argnames=_STATIC)
def bootstrap_program(key, idx, sim: SimModel, nlevels, theta0, blocks, layout, reml,
                      maxiter, gtol) -> LaneFit:
    """Simulate the replicates numbered ``idx`` and fit each: one compiled program."""
    Y = simulate_batch(key, idx, sim, nlevels)
    return fit_responses(theta0, Y, blocks, sim.rmap, layout, reml, maxiter, gtol)
