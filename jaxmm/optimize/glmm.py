"""glmer's optimizer, driven from the host over one compiled deviance + exact gradient.

L-BFGS (scipy, unconstrained) on the Laplace / adaptive Gauss-Hermite deviance over
(theta, beta) (nagq = 0: theta only, beta inside PIRLS), PIRLS warm-started at the previous
evaluation's modes, stopped at a loose relative change; then Newton steps with the Hessian
over (theta, beta) taken by forward differences of the exact implicit gradient
(:func:`jaxmm.core.laplace.deviance`). lme4 takes that Hessian by finite differences of the
deviance for ``vcov``; we need it anyway, and Newton converges quadratically from where
L-BFGS stops. Column signs of each T are normalized and numerically-zero diagonals snapped
to 0 when that does not raise the deviance, as for linear models. The fully jitted two-stage
program (vmappable, slow to compile) is :mod:`jaxmm.optimize.glmm_jit`; the compiled
deviance program and the host-side steps are in :mod:`jaxmm.optimize.glmm_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.pirls import Factor, GlmmData, GlmmLayout, PirlsResult
from ..covariance import Unstructured, tril_colmajor
from ..precision import compute
from ..programs import cached_program
from .glmm_steps import (  # noqa: F401  (value_and_grad_fn: the program a fit uses)
    LBFGS_FTOL,
    SMALL_DATA_BYTES,
    _fd_hessian_host,
    _lbfgs,
    _newton_polish,
    _Objective,
    _packed_vg_fn,
    _stack,
    finalize_fn,
    home_device,
    value_and_grad_fn,
)
from .lbfgs import STATUS_MESSAGES, Solution
from .lmm import OptSummary

SINGULAR_TOL = 1e-4


class GlmmFit(NamedTuple):
    """Everything the fitting program returns (a pytree)."""

    stage1: Solution
    stage2: Solution
    theta: jnp.ndarray
    beta: jnp.ndarray
    u: jnp.ndarray
    fun: jnp.ndarray
    grad: jnp.ndarray
    hessian: jnp.ndarray
    boundary: jnp.ndarray
    pirls: PirlsResult
    factor_u: Factor  # Fisher-weight factor of the random effects at the optimum
    factor_ub: Factor  # ... with beta's columns (nAGQ = 0's vcov)


def _signs(theta, lay: GlmmLayout):
    out, s = [], 0
    for q in lay.qs:
        k = q * (q + 1) // 2
        r, c = tril_colmajor(q)
        T = jnp.zeros((q, q), theta.dtype).at[r, c].set(theta[s : s + k])
        flip = jnp.where(jnp.diagonal(T) < 0, -1.0, 1.0)
        out.append(flip[c])
        s += k
    return jnp.concatenate(out)


def _diag_mask(lay: GlmmLayout) -> np.ndarray:
    return np.concatenate([Unstructured(q).is_diag for q in lay.qs])


@dataclass
class GlmmOptSummary(OptSummary):
    """What the optimizer did: :class:`~jaxmm.optimize.lmm.OptSummary`'s fields plus the
    fixed effects (optimized jointly with theta unless ``nagq == 0``), ``nagq`` and the
    PIRLS iterations."""

    beta0: np.ndarray = field(kw_only=True)
    beta: np.ndarray = field(kw_only=True)
    nagq: int = field(kw_only=True)
    stage1_iter: int = 0
    pirls_iter: int = 0
    hessian_method: str = "forward differences of the exact gradient"
    optimizer: str = "L-BFGS (optax): stage 1 theta (beta in PIRLS), stage 2 (theta, beta)"


def check(res: GlmmFit, nagq: int, nt: int, grad_tol: float = 2e-3) -> GlmmOptSummary:
    """lme4-style convergence checks on the stage that produced the estimates."""
    g, H = np.asarray(res.grad), np.asarray(res.hessian)
    bnd = np.asarray(res.boundary)
    free = np.flatnonzero(~np.concatenate([bnd, np.zeros(g.size - bnd.size, bool)]))
    gf, Hf = g[free], H[np.ix_(free, free)]
    max_grad = float(np.max(np.abs(gf))) if free.size else 0.0
    try:
        min_eig = float(np.min(np.linalg.eigvalsh(Hf))) if free.size else 0.0
        rel = float(np.max(np.abs(np.linalg.solve(Hf, gf)))) if free.size else 0.0
    except np.linalg.LinAlgError:
        min_eig, rel = float("nan"), max_grad
    sol = res.stage2
    status = int(sol.status)
    warnings = []
    if status >= 2:
        warnings.append(f"optimizer: {STATUS_MESSAGES[status]} ({int(sol.n_iter)} iterations)")
    if not np.isfinite(max_grad) or min(rel, max_grad) > grad_tol:
        warnings.append(f"Model failed to converge with max|grad| = {max_grad:.3g} (tol = {grad_tol:g})")
    if free.size and not min_eig > 0:
        warnings.append("Model is nearly unidentifiable: the Hessian of the deviance is not "
                        f"positive definite at the optimum (smallest eigenvalue {min_eig:.3g})")
    if not bool(res.pirls.converged):
        warnings.append(
            "PIRLS did not converge at the estimates (the conditional modes are not reliable): "
            "check for complete separation (a level or covariate that predicts the response "
            "perfectly) or fixed effects that diverge")
    return GlmmOptSummary(
        theta0=np.zeros(0), beta0=np.zeros(0), theta=np.asarray(res.theta),
        beta=np.asarray(res.beta), fmin=float(res.fun), nagq=nagq,
        n_iter=int(sol.n_iter) + (int(res.stage1.n_iter) if nagq else 0),
        n_eval=int(sol.n_eval) + (int(res.stage1.n_eval) if nagq else 0), status=status,
        message=STATUS_MESSAGES[status], max_grad=max_grad, hessian_min_eig=min_eig,
        converged=not warnings, stage1_iter=int(res.stage1.n_iter),
        pirls_iter=int(res.pirls.n_iter),
        boundary=[int(i) for i in np.flatnonzero(bnd)], warnings=warnings, hessian=H,
    )


def run_glmm_fit(data: GlmmData, lay: GlmmLayout, theta0, beta0, nagq: int = 1,
                 maxiter: int = 500) -> tuple[GlmmFit, GlmmOptSummary]:
    """Fit a GLMM with L-BFGS driven from the host over one compiled objective + gradient,
    then Newton steps with the finite-difference Hessian (which vcov needs anyway).

    nagq >= 1: optimize (theta, beta) jointly on the Laplace / AGQ deviance from theta0 and
    the GLM's beta (lme4's stage 2; its stage 1 only finds a start, which L-BFGS with exact
    gradients does not need). nagq = 0: theta only, beta inside PIRLS (lme4's nAGQ = 0).
    L-BFGS stops at a loose relative change (:data:`LBFGS_FTOL`); Newton finishes (quadratic
    convergence); if Newton cannot, L-BFGS resumes at the tight tolerance.
    """
    nt, nu = lay.n_theta, lay.nu
    diag = _diag_mask(lay)
    with compute():
        # small data go into each compiled call as NumPy (no separate transfer dispatch)
        small = sum(a.nbytes for a in jax.tree_util.tree_leaves(data)) <= SMALL_DATA_BYTES
        dj = data if small else jax.device_put(data)
        bip = nagq == 0
        x0 = np.asarray(theta0, float) if bip else np.concatenate([theta0, beta0])
        v0 = np.concatenate([np.zeros(nu), np.asarray(beta0, np.float64)]) if bip \
            else np.zeros(nu)
        # the stored programs (jaxmm.programs): a later process skips tracing them
        vg = cached_program("glmm.packed_vg", _packed_vg_fn(lay, nagq, bip), (lay, nagq, bip),
                            _stack(x0), np.int64(1), dj, v0)
        obj = _Objective(vg, dj, v0)
        sol = _lbfgs(obj, x0, maxiter, 1e-6, ftol=LBFGS_FTOL)
        n_iter = int(sol.nit)
        x = _normalize(obj, np.asarray(sol.x, float), lay, bip)
        fx = obj(x)[0]
        tiny = diag & (np.abs(x[:nt]) < SINGULAR_TOL)
        bnd = np.zeros(nt, bool)
        if tiny.any():
            xs = x.copy()
            xs[:nt][tiny] = 0.0
            if obj(xs)[0] <= fx + 1e-10 * max(1.0, abs(fx)):
                x, bnd = xs, tiny
        free = ~np.concatenate([bnd, np.zeros(x.size - nt, bool)])
        x, fun, g, H, ok = _newton_polish(obj, x, free)
        if not ok:  # resume L-BFGS at the tight tolerance, then the Hessian there
            sol = _lbfgs(obj, x, maxiter, 1e-6)
            n_iter += int(sol.nit)
            x = _normalize(obj, np.asarray(sol.x, float), lay, bip)
            fun, g, H = _fd_hessian_host(obj, x)
            bnd = np.zeros(nt, bool)
        pr = obj.pirls
        theta = x[:nt]
        if bip:
            u, beta = np.asarray(pr.v[:nu]), np.asarray(pr.v[nu:])
        else:
            u, beta = np.asarray(pr.v), x[nt:]
        beta = np.asarray(beta, np.float64)
        fin = cached_program("glmm.finalize", finalize_fn(lay), (lay,), theta, beta, u, dj)
        Fu, Fub, pr = jax.device_get((*fin(theta, beta, u, dj), pr))
    status = 0 if sol.success else (2 if sol.nit >= maxiter else 1)
    stage = Solution(x=x, fun=np.asarray(fun), grad=np.asarray(g),
                     n_iter=np.asarray(n_iter), n_eval=np.asarray(obj.n_eval),
                     status=np.asarray(status))
    res = GlmmFit(stage, stage, theta, beta, u, np.asarray(fun), g, H, bnd, pr, Fu, Fub)
    opt = check(res, nagq, nt)
    opt.n_iter, opt.n_eval, opt.stage1_iter = n_iter, obj.n_eval, 0
    opt.optimizer = ("L-BFGS-B (scipy, no bounds) on the exact implicit gradient, then Newton "
                     "with the finite-difference Hessian")
    if not sol.success and status == 1 and not opt.warnings:
        opt.message = f"converged: {sol.message}"
    opt.theta0, opt.beta0 = np.asarray(theta0, float), np.asarray(beta0, float)
    return res, opt


def _normalize(obj: _Objective, x, lay: GlmmLayout, bip: bool):
    """Flip column signs of each T so its diagonal is non-negative (the deviance is even)."""
    nt = lay.n_theta
    signs = _signs_np(x[:nt], lay)
    if np.any(signs < 0):
        x = x.copy()
        x[:nt] *= signs
        v = np.array(obj.v, dtype=np.float64)  # the modes restart at 0 (beta kept in PIRLS)
        v[: lay.nu if bip else v.size] = 0.0
        obj.v = jax.device_put(v, home_device())  # committed, as the calls return it
    return x


def _signs_np(theta, lay: GlmmLayout) -> np.ndarray:
    out, s = [], 0
    for q in lay.qs:
        k = q * (q + 1) // 2
        r, c = tril_colmajor(q)
        diag_vals = theta[s : s + k][r == c]
        flip = np.where(diag_vals < 0, -1.0, 1.0)
        out.append(flip[c])
        s += k
    return np.concatenate(out)
