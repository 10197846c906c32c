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
from ..optimize.lbfgs import Solution

#: Rest blocks up to this size are factored by the written-out Cholesky.
SMALL_R = 24


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
        return objective(theta, blocks, layout, reml)
    part = partial_factor(theta, blocks, layout)
    N = blocks.n - (layout.p if reml else 0)
    w = row_weights(layout, reml, N, theta.dtype)
    ld = jnp.sum(w * _logdiag2_unrolled(part.S))
    return part.logdet1 + ld + N * (1.0 + jnp.log(2.0 * math.pi / N))


def _direction(g, S, Y, rho):
    """L-BFGS two-loop recursion; memory newest first, empty slots have rho = 0."""
    q = g
    alphas = []
    for i in range(S.shape[0]):
        a = rho[i] * jnp.dot(S[i], q)
        q = q - a * Y[i]
        alphas.append(a)
    yy = jnp.dot(Y[0], Y[0])
    gamma = jnp.where(rho[0] > 0, 1.0 / jnp.where(rho[0] > 0, rho[0] * yy, 1.0), 0.0)
    gamma = jnp.where(gamma > 0, gamma, 1.0 / jnp.maximum(1.0, jnp.max(jnp.abs(g))))
    r = gamma * q
    for i in reversed(range(S.shape[0])):
        b = rho[i] * jnp.dot(Y[i], r)
        r = r + S[i] * (alphas[i] - b)
    return -r


def lbfgs(
    fun: Callable[[jnp.ndarray], jnp.ndarray], x0: jnp.ndarray, *, maxiter: int = 300,
    gtol: float = 1e-7, gtol_rel: float = 1e-7, ftol: float = 1e-15, memory: int = 6,
    max_backtrack: int = 30,
) -> Solution:
    """Minimize ``fun`` from ``x0``: L-BFGS with backtracking (Armijo) line search, inside
    ``lax.while_loop`` (jit and vmap friendly). Stopping rules and status codes are those
    of :func:`jaxmm.optimize.lbfgs.minimize`.

    Example:
        >>> import jax.numpy as jnp
        >>> with jaxmm.x64():
        ...     sol = lbfgs(lambda x: jnp.sum((x - 3.0) ** 2) + x[0] ** 4, jnp.zeros(2))
        >>> [round(float(v), 6) for v in sol.x], int(sol.status)
        ([1.0, 3.0], 0)
    """
    vg = jax.value_and_grad(fun)
    n = x0.shape[0]
    f0, g0 = vg(x0)

    def small_grad(f, g):
        return jnp.max(jnp.abs(g)) <= jnp.maximum(gtol, gtol_rel * jnp.abs(f))

    def cond(c):
        return ~c["done"]

    def body(c):
        x, f, g = c["x"], c["f"], c["g"]
        d = _direction(g, c["S"], c["Y"], c["rho"])
        gd = jnp.dot(g, d)
        bad = ~(gd < 0) | ~jnp.all(jnp.isfinite(d))
        d = jnp.where(bad, -g / jnp.maximum(1.0, jnp.max(jnp.abs(g))), d)
        gd = jnp.where(bad, jnp.dot(g, d), gd)

        def ls_cond(s):
            t, fn, gn, k = s
            ok = fn <= f + 1e-4 * t * gd
            return ~ok & (k < max_backtrack) & ~c["done"]

        def ls_body(s):
            t, _, _, k = s
            t = 0.5 * t
            fn, gn = vg(x + t * d)
            return t, fn, gn, k + 1

        fn, gn = vg(x + d)
        t, fn, gn, k = jax.lax.while_loop(ls_cond, ls_body, (jnp.ones((), x.dtype), fn, gn, 0))
        accepted = (fn <= f + 1e-4 * t * gd) & jnp.isfinite(fn)
        xn = jnp.where(accepted, x + t * d, x)
        fn = jnp.where(accepted, fn, f)
        gn = jnp.where(accepted, gn, g)
        s, y = xn - x, gn - g
        sy = jnp.dot(s, y)
        keep = accepted & (sy > 1e-10 * jnp.linalg.norm(s) * jnp.linalg.norm(y))
        S = jnp.where(keep, jnp.roll(c["S"], 1, axis=0).at[0].set(s), c["S"])
        Y = jnp.where(keep, jnp.roll(c["Y"], 1, axis=0).at[0].set(y), c["Y"])
        rho = jnp.where(keep, jnp.roll(c["rho"], 1).at[0].set(1.0 / jnp.where(keep, sy, 1.0)), c["rho"])
        small = (f - fn) <= ftol * (1.0 + jnp.abs(fn))
        stall = jnp.where(small, c["stall"] + 1, 0)
        it = c["it"] + 1
        status = jnp.where(
            small_grad(fn, gn), 0,
            jnp.where(~accepted | (stall >= 2), 1, jnp.where(it >= maxiter, 2, -1)),
        )
        return dict(x=xn, f=fn, g=gn, S=S, Y=Y, rho=rho, stall=stall, it=it,
                    n_eval=c["n_eval"] + k + 1, status=status, done=status >= 0)

    status0 = jnp.where(~jnp.isfinite(f0), 3, jnp.where(small_grad(f0, g0), 0, -1))
    c0 = dict(
        x=x0, f=f0, g=g0, S=jnp.zeros((memory, n), x0.dtype), Y=jnp.zeros((memory, n), x0.dtype),
        rho=jnp.zeros((memory,), x0.dtype), stall=jnp.asarray(0), it=jnp.asarray(0),
        n_eval=jnp.asarray(1), status=status0, done=status0 >= 0,
    )
    c = jax.lax.while_loop(cond, body, c0)
    status = jnp.where(~jnp.isfinite(c["f"]), 3, c["status"])
    return Solution(x=c["x"], fun=c["f"], grad=c["g"], n_iter=c["it"], n_eval=c["n_eval"], status=status)
