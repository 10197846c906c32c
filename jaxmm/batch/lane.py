"""Per-lane pieces of a batched fit: the criterion with a vectorizing small Cholesky, and a
lean L-BFGS loop.

Why not the single-fit program as is: under ``vmap`` a dense Cholesky becomes a batched
LAPACK call that factors the lanes' tiny matrices one after another (sleepstudy's rest
block is 3 x 3: a thousand calls per evaluation), and optax's zoom line search is a large
program (seconds of compile) whose inner loop runs as long as its slowest lane. Here the
dense factor of a small rest block (``r <= SMALL_R``) is written out column by column in
plain array operations, which vectorize across lanes, and the line search is backtracking
from the unit step (most lanes accept it at once; a lane that is done takes no steps).
Larger rest blocks use the core criterion unchanged.
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

from ..core.blocked import partial_factor
from ..core.layout import Blocks, Layout
from ..core.objective import objective, row_weights
from ..optimize.bfgs import lbfgs_direction
from ..optimize.lbfgs import Solution

#: Rest blocks up to this size are factored by the written-out Cholesky.
SMALL_R = 4


def _logdiag2_unrolled(S: jnp.ndarray) -> jnp.ndarray:
    """log L_jj^2 of the Cholesky factor of S (lower triangle read), one column at a time."""
    r = S.shape[0]
    L = jnp.zeros_like(S)
    out = []
    for j in range(r):
        v = S[j:, j] - L[j:, :j] @ L[j, :j]
        out.append(jnp.log(v[0]))
        L = L.at[j:, j].set(v / jnp.sqrt(v[0]))
    return jnp.stack(out)


def lane_objective(theta: jnp.ndarray, blocks: Blocks, layout: Layout, reml: bool) -> jnp.ndarray:
    """Same value as :func:`jaxmm.core.objective`; small rest blocks factored unrolled."""
    if layout.r > SMALL_R:
        return objective(theta, blocks, layout, reml, batched=True)
    part = partial_factor(theta, blocks, layout, batched=True)
    N = blocks.n - (layout.p if reml else 0)
    w = row_weights(layout, reml, N, theta.dtype)
    ld = jnp.sum(w * _logdiag2_unrolled(part.St.T))
    return part.logdet1 + ld + N * (1.0 + jnp.log(2.0 * math.pi / N))


def lbfgs(
    fun: Callable[[jnp.ndarray], jnp.ndarray], x0: jnp.ndarray, *, maxiter: int = 300,
    gtol: float = 1e-7, gtol_rel: float = 1e-7, ftol: float = 1e-15, memory: int = 6,
    max_backtrack: int = 30,
) -> Solution:
    """Minimize ``fun`` from ``x0``: L-BFGS with backtracking (Armijo) line search, inside
    one ``lax.while_loop`` (jit and vmap friendly). Stopping rules and status codes are
    those of :func:`jaxmm.optimize.lbfgs.minimize`.

    The loop evaluates the objective and gradient exactly once per trip, at a trial point;
    the trip then either accepts it (a new iterate and direction) or halves the step. The
    program holds one copy of the gradient, and under ``vmap`` lanes in different phases
    (line search or not) advance together instead of waiting for each other's inner loops.

    Example:
        >>> import jax.numpy as jnp
        >>> with jaxmm.x64():
        ...     sol = lbfgs(lambda x: jnp.sum((x - 3.0) ** 2) + x[0] ** 4, jnp.zeros(2))
        >>> [round(float(v), 6) for v in sol.x], int(sol.status)
        ([1.0, 3.0], 0)
    """
    vg = jax.value_and_grad(fun)
    n = x0.shape[0]
    dt = x0.dtype

    def small_grad(f, g):
        return jnp.max(jnp.abs(g)) <= jnp.maximum(gtol, gtol_rel * jnp.abs(f))

    def new_direction(g, S, Y, rho):
        d = lbfgs_direction(g, S, Y, rho)
        gd = jnp.dot(g, d)
        bad = ~(gd < 0) | ~jnp.all(jnp.isfinite(d))
        d = jnp.where(bad, -g / jnp.maximum(1.0, jnp.max(jnp.abs(g))), d)
        return d, jnp.dot(g, d)

    def body(c):
        ft, gt = vg(c["xt"])
        first = c["it"] < 0
        # Armijo test of the trial point (the first trip only evaluates x0)
        ok = (ft <= c["f"] + 1e-4 * c["t"] * c["gd"]) & jnp.isfinite(ft) & ~first
        s, y = c["xt"] - c["x"], gt - c["g"]
        sy = jnp.dot(s, y)
        keep = ok & (sy > 1e-10 * jnp.linalg.norm(s) * jnp.linalg.norm(y))
        S = jnp.where(keep, jnp.roll(c["S"], 1, axis=0).at[0].set(s), c["S"])
        Y = jnp.where(keep, jnp.roll(c["Y"], 1, axis=0).at[0].set(y), c["Y"])
        rho = jnp.where(keep, jnp.roll(c["rho"], 1).at[0].set(1.0 / jnp.where(keep, sy, 1.0)), c["rho"])
        moved = ok | first
        x = jnp.where(moved, c["xt"], c["x"])
        f = jnp.where(moved, ft, c["f"])
        g = jnp.where(moved, gt, c["g"])
        it = jnp.where(moved, c["it"] + 1, c["it"])
        small = ok & ((c["f"] - ft) <= ftol * (1.0 + jnp.abs(ft)))
        stall = jnp.where(ok, jnp.where(small, c["stall"] + 1, 0), c["stall"])
        k = jnp.where(moved, 0, c["k"] + 1)
        failed = ~moved & (k >= max_backtrack)
        status = jnp.where(
            first & ~jnp.isfinite(ft), 3,
            jnp.where(moved & small_grad(f, g), 0,
                      jnp.where(failed | (stall >= 2), 1, jnp.where(moved & (it >= maxiter), 2, -1))),
        )
        d_new, gd_new = new_direction(g, S, Y, rho)
        d = jnp.where(moved, d_new, c["d"])
        gd = jnp.where(moved, gd_new, c["gd"])
        t = jnp.where(moved, 1.0, 0.5 * c["t"])
        return dict(x=x, f=f, g=g, S=S, Y=Y, rho=rho, d=d, gd=gd, t=t, xt=x + t * d,
                    k=k, stall=stall, it=it, n_eval=c["n_eval"] + 1, status=status)

    zeros = jnp.zeros((memory, n), dt)
    c0 = dict(
        x=x0, f=jnp.asarray(jnp.inf, dt), g=jnp.zeros_like(x0), S=zeros, Y=zeros,
        rho=jnp.zeros((memory,), dt), d=jnp.zeros_like(x0), gd=jnp.zeros((), dt),
        t=jnp.ones((), dt), xt=x0, k=jnp.asarray(0), stall=jnp.asarray(0),
        it=jnp.asarray(-1), n_eval=jnp.asarray(0), status=jnp.asarray(-1),
    )
    c = jax.lax.while_loop(lambda c: c["status"] < 0, body, c0)
    status = jnp.where(~jnp.isfinite(c["f"]), 3, c["status"])
    return Solution(x=c["x"], fun=c["f"], grad=c["g"], n_iter=c["it"], n_eval=c["n_eval"], status=status)
