"""lme4's two-stage glmer optimization as one jit-compiled program (vmappable; slow to
compile: every optimizer stage inlines PIRLS several times; :func:`jaxmm.glmer` uses the
host-driven :func:`jaxmm.optimize.glmm.run_glmm_fit` instead).

Stage 1 (lme4's nAGQ = 0): minimize the Laplace deviance over theta with beta updated inside
PIRLS. Stage 2 (nagq >= 1): minimize the Laplace (or adaptive Gauss-Hermite) deviance over
(theta, beta) jointly, from stage 1's estimates, PIRLS warm-started at stage 1's modes. Both
stages use unconstrained L-BFGS with the exact implicit gradient. At the optimum the Hessian
over (theta, beta) is taken by forward differences of the exact gradient.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..core.laplace import deviance
from ..core.pirls import (
    GlmmData,
    GlmmLayout,
    dense_factor,
    factor,
    linear_predictor,
    pirls,
    z_lambda,
)
from ..precision import compute
from .glmm import SINGULAR_TOL, GlmmFit, GlmmOptSummary, _diag_mask, _signs, check
from .lbfgs import minimize


def _fd_hessian(fun, x):
    h = 1e-5 * jnp.maximum(jnp.abs(x), 0.1)
    pts = jnp.concatenate([x[None, :], x[None, :] + jnp.diag(h)])
    G = jax.lax.map(jax.grad(fun), pts)
    H = (G[1:] - G[0][None, :]) / h[:, None]
    return G[0], 0.5 * (H + H.T)


@partial(jax.jit, static_argnames=("lay", "nagq", "maxiter"))
def fit_program(theta0, beta0, data: GlmmData, lay: GlmmLayout, nagq: int = 1,
                maxiter: int = 500) -> GlmmFit:
    """Fit a GLMM (both stages), snap the boundary, and evaluate the Hessian there."""
    nt, nu = lay.n_theta, lay.nu
    diag = jnp.asarray(_diag_mask(lay))
    v0 = jnp.concatenate([jnp.zeros(nu), beta0])
    f1 = deviance(lay, 1, True)
    fun1 = lambda th: f1(th, data, v0)[0]
    sol1 = minimize(fun1, theta0, maxiter=maxiter, gtol=1e-6, gtol_rel=1e-8)
    th1 = sol1.x * _signs(sol1.x, lay)
    p1 = pirls(th1, None, v0, data, lay, True)
    u1, b1 = p1.v[:nu], p1.v[nu:]
    if nagq == 0:
        tiny = diag & (jnp.abs(th1) < SINGULAR_TOL)
        snapped = jnp.where(tiny, 0.0, th1)
        f_snap = jax.lax.cond(jnp.any(tiny), fun1, lambda t: jnp.inf * jnp.ones(()), snapped)
        accept = f_snap <= sol1.fun + 1e-10 * jnp.maximum(1.0, jnp.abs(sol1.fun))
        theta = jnp.where(accept, snapped, th1)
        g, H = _fd_hessian(fun1, theta)
        pr = pirls(theta, None, v0, data, lay, True)
        u, beta = pr.v[:nu], pr.v[nu:]
        fun, sol2, bnd = fun1(theta), sol1, tiny & accept
    else:
        f2 = deviance(lay, nagq, False)
        fun2 = lambda par: f2(par, data, u1)[0]
        sol2 = minimize(fun2, jnp.concatenate([th1, b1]), maxiter=maxiter, gtol=1e-7,
                        gtol_rel=1e-10)
        th2 = sol2.x[:nt] * _signs(sol2.x[:nt], lay)
        beta = sol2.x[nt:]
        tiny = diag & (jnp.abs(th2) < SINGULAR_TOL)
        snapped = jnp.where(tiny, 0.0, th2)
        f_snap = jax.lax.cond(jnp.any(tiny), fun2, lambda t: jnp.inf * jnp.ones(()),
                              jnp.concatenate([snapped, beta]))
        accept = f_snap <= sol2.fun + 1e-10 * jnp.maximum(1.0, jnp.abs(sol2.fun))
        theta = jnp.where(accept, snapped, th2)
        par = jnp.concatenate([theta, beta])
        g, H = _fd_hessian(fun2, par)
        fun, bnd = fun2(par), tiny & accept
        pr = pirls(theta, beta, u1, data, lay, False)
        u = pr.v
    zl = z_lambda(theta, data, lay)
    eta = linear_predictor(u, beta, zl, data, lay)
    w = lay.family.fisher_weights(eta, data.resp)
    return GlmmFit(sol1, sol2, theta, beta, u, fun, g, H, bnd, pr,
                   dense_factor(factor(w, zl, data, lay, False), data, lay),
                   dense_factor(factor(w, zl, data, lay, True), data, lay))


def run_glmm_fit_jit(data: GlmmData, lay: GlmmLayout, theta0, beta0, nagq: int = 1,
                     maxiter: int = 500) -> tuple[GlmmFit, GlmmOptSummary]:
    """Run the fully jitted :func:`fit_program` (vmappable; slow to compile: ~10x one
    objective, since every optimizer stage inlines PIRLS several times)."""
    with compute():
        res = fit_program(jnp.asarray(theta0, jnp.float64), jnp.asarray(beta0, jnp.float64),
                          jax.tree_util.tree_map(jnp.asarray, data), lay, nagq, maxiter)
        res = jax.device_get(res)
    opt = check(res, nagq, lay.n_theta)
    opt.theta0, opt.beta0 = np.asarray(theta0, float), np.asarray(beta0, float)
    return res, opt
