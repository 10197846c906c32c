"""lme4's ``optimizeLmer``: minimize the profiled criterion over theta, then check the optimum.

The fit is one jit-compiled loop (L-BFGS on unconstrained theta). Afterwards, on the host:
column signs of each T are normalized, diagonals that are numerically zero are set to zero
exactly when that does not raise the criterion (a boundary, i.e. singular, fit), and
convergence is checked with the exact gradient and Hessian over the free parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..core.devfun import DevFun
from ..core.layout import Blocks, Layout
from ..core.objective import objective
from ..covariance import Unstructured
from ..precision import x64
from .lbfgs import STATUS_MESSAGES, minimize


@partial(jax.jit, static_argnames=("layout", "reml", "maxiter"))
def fit_theta(theta0, blocks: Blocks, layout: Layout, reml: bool, maxiter: int = 1000, gtol=1e-7):
    """Jit-compiled L-BFGS fit of theta (vmappable over theta0 and the y-dependent blocks)."""
    return minimize(lambda t: objective(t, blocks, layout, reml), theta0, maxiter=maxiter, gtol=gtol)


@dataclass
class OptSummary:
    """What the optimizer did, as MixedModels.jl's OptSummary records it."""

    theta0: np.ndarray
    theta: np.ndarray
    fmin: float
    n_iter: int
    n_eval: int
    status: int
    message: str
    max_grad: float
    hessian_min_eig: float
    converged: bool
    boundary: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    optimizer: str = "L-BFGS (optax, zoom line search), unconstrained theta"


def default_theta0(layout: Layout) -> np.ndarray:
    return np.concatenate([Unstructured(q).theta0() for q in layout.qs])


def diag_mask(layout: Layout) -> np.ndarray:
    return np.concatenate([Unstructured(q).is_diag for q in layout.qs])


def normalize_theta(theta: np.ndarray, layout: Layout) -> np.ndarray:
    """Flip column signs so every diagonal of every T is >= 0 (same criterion)."""
    out, start = [], 0
    for q in layout.qs:
        cov = Unstructured(q)
        out.append(cov.normalize(theta[start : start + cov.n_theta]))
        start += cov.n_theta
    return np.concatenate(out)


def optimize_lmm(
    devfun: DevFun,
    theta0: np.ndarray | None = None,
    *,
    maxiter: int = 1000,
    gtol: float = 1e-7,
    grad_tol: float = 2e-3,
    singular_tol: float = 1e-4,
) -> OptSummary:
    """Fit theta for one model and check convergence (lme4's ``optimizeLmer`` + ``checkConv``).

    Example:
        >>> import jaxmm
        >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> opt = jaxmm.optimize_lmm(jaxmm.mk_devfun(d))
        >>> opt.converged, round(opt.fmin, 4)
        (True, 1743.6283)
    """
    layout, blocks, reml = devfun.layout, devfun.blocks, devfun.reml
    th0 = default_theta0(layout) if theta0 is None else np.asarray(theta0, float)
    with x64():
        sol = fit_theta(jnp.asarray(th0), blocks, layout, reml, maxiter, gtol)
        sol = jax.device_get(sol)
    theta = normalize_theta(np.asarray(sol.x), layout)
    fmin = float(sol.fun)
    diag = diag_mask(layout)

    # Snap numerically-zero diagonals to the boundary when that does not raise the criterion.
    boundary = []
    for i in np.flatnonzero(diag & (np.abs(theta) < singular_tol)):
        trial = theta.copy()
        trial[i] = 0.0
        f = devfun(trial)
        if f <= fmin + 1e-10 * max(1.0, abs(fmin)):
            theta, fmin = trial, min(f, fmin)
            boundary.append(int(i))

    f, g = devfun.value_and_grad(theta)
    H = devfun.hessian(theta)
    free = np.setdiff1d(np.arange(theta.size), boundary)
    gfree = g[free] if free.size else np.zeros(0)
    max_grad = float(np.max(np.abs(gfree))) if gfree.size else 0.0
    Hf = H[np.ix_(free, free)]
    min_eig = float(np.min(np.linalg.eigvalsh(Hf))) if free.size else 0.0
    warnings = []
    status = int(sol.status)
    if status >= 2:
        warnings.append(f"optimizer: {STATUS_MESSAGES[status]} ({int(sol.n_iter)} iterations)")
    # lme4's relative-gradient check: solve(H, g) scaled, falling back to max|grad|.
    try:
        rel = np.linalg.solve(Hf, gfree) if free.size else np.zeros(0)
        rel_grad = float(np.max(np.abs(rel))) if rel.size else 0.0
    except np.linalg.LinAlgError:
        rel_grad = max_grad
    if min(rel_grad, max_grad) > grad_tol:
        warnings.append(
            f"Model failed to converge with max|grad| = {max_grad:.3g} (tol = {grad_tol:g})"
        )
    if free.size and min_eig <= 0:
        warnings.append(
            "Model is nearly unidentifiable: the Hessian of the criterion is not positive "
            f"definite at the optimum (smallest eigenvalue {min_eig:.3g})"
        )
    return OptSummary(
        theta0=th0, theta=theta, fmin=float(f), n_iter=int(sol.n_iter), n_eval=int(sol.n_eval),
        status=status, message=STATUS_MESSAGES[status], max_grad=max_grad,
        hessian_min_eig=min_eig, converged=not warnings, boundary=boundary, warnings=warnings,
    )
