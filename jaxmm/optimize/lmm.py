"""lme4's ``optimizeLmer``: minimize the profiled criterion over theta, then check the optimum.

One jit-compiled program does it all (one dispatch, one compile, vmappable):
L-BFGS on unconstrained theta; column signs of each T normalized so diagonals are >= 0;
diagonals that are numerically zero set to exactly zero when that does not raise the
criterion (a boundary, i.e. singular, fit); then the exact gradient and Hessian at the
optimum for the convergence checks, and the conditional estimates there. The Hessian is
taken by central differences of the exact gradient (``exact_hessian``: 2 n_theta gradients,
within ~1e-8 of autodiff, and a third of forward-over-reverse's compile time), or for large
models by forward differences (n_theta gradients, within ~1e-5: each gradient of InstEval
costs ~50 ms); :meth:`jaxmm.DevFun.hessian` always gives the autodiff one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.blocked import T_of
from ..core.devfun import DevFun
from ..core.layout import Blocks, Layout, split_theta
from ..core.objective import objective
from ..core.solve import Estimates, estimates
from ..covariance import Unstructured, tril_colmajor
from ..precision import compute
from ..programs import CPU_OPTIONS, LARGE_CPU_OPTIONS, run_cached
from .lbfgs import STATUS_MESSAGES, Solution, minimize

#: Dense blocks at least this large get the finite-difference-of-exact-gradient Hessian.
EXACT_HESSIAN_MAX_R = 512
#: So do models whose first term has more than this many l1 * q1^2 entries (star: 49,152):
#: forward-over-reverse through their batched blocks costs n_theta times 2-3 gradients
#: (star: 156 ms against 67 ms for n_theta forward differences of the exact gradient).
EXACT_HESSIAN_MAX_TERM1 = 8192


def exact_hessian_affordable(layout: Layout) -> bool:
    """Whether the fit's convergence check takes central differences of the exact gradient
    for the Hessian (else forward differences).

    Example:
        >>> from jaxmm.core.layout import Layout
        >>> exact_hessian_affordable(Layout(q1=2, l1=20, rest=(), rz=0, p=2, qs=(2,)))
        True
    """
    return layout.r < EXACT_HESSIAN_MAX_R and layout.l1 * layout.q1**2 <= EXACT_HESSIAN_MAX_TERM1
SINGULAR_TOL = 1e-4


class FitResult(NamedTuple):
    """Everything the fitting program returns (a pytree)."""

    solution: Solution
    theta: jnp.ndarray
    fun: jnp.ndarray
    grad: jnp.ndarray
    hessian: jnp.ndarray
    boundary: jnp.ndarray  # bool per theta: set to exactly zero
    estimates: Estimates


def default_theta0(layout: Layout) -> np.ndarray:
    """lme4's start: every T = I."""
    return np.concatenate([Unstructured(q).theta0() for q in layout.qs])


def diag_mask(layout: Layout) -> np.ndarray:
    return np.concatenate([Unstructured(q).is_diag for q in layout.qs])


def column_signs(theta: jnp.ndarray, layout: Layout) -> jnp.ndarray:
    """Per theta entry, the sign of its column's diagonal (+1 where the diagonal is >= 0)."""
    out = []
    for th, q in zip(split_theta(theta, layout), layout.qs):
        flip = jnp.where(jnp.diagonal(T_of(th, q)) < 0, -1.0, 1.0)
        out.append(flip[tril_colmajor(q)[1]])
    return jnp.concatenate(out)


def normalize_signs(theta: jnp.ndarray, layout: Layout) -> jnp.ndarray:
    """Flip column signs so every diagonal of every T is >= 0 (same criterion)."""
    return theta * column_signs(theta, layout)


def _gradients(fun, theta: jnp.ndarray, f0, g0, known, steps: jnp.ndarray):
    """The criterion and gradient at ``theta`` (evaluated unless ``known``: then ``f0``,
    ``g0``) and the gradients at ``theta + steps[k]`` for each row, one after another
    through a single compiled gradient: a second instance for theta alone cost InstEval's
    program ~20 more matrix products, each of which XLA prepares on its first run.

    One after another (a loop), not vmapped: two batched LAPACK Choleskys running
    concurrently on XLA's CPU thread pool can deadlock it."""
    vg = jax.value_and_grad(fun)
    pts = jnp.concatenate([theta[None, :], theta[None, :] + steps])

    def body(i, c):
        F, G = c
        f, g = vg(pts[i])
        return F.at[i].set(f), G.at[i].set(g)

    F = jnp.zeros(pts.shape[0], theta.dtype).at[0].set(f0)
    G = jnp.zeros(pts.shape, theta.dtype).at[0].set(g0)
    F, G = jax.lax.fori_loop(jnp.where(known, 1, 0), pts.shape[0], body, (F, G))
    return F[0], G[0], G[1:]


def _hessian(fun, theta: jnp.ndarray, f0, g0, known, central: bool):
    """(f, grad, Hessian) at ``theta``, the Hessian by differences of the exact gradient:
    central (2 n_theta gradients; within ~1e-8 relative of forward-over-reverse autodiff,
    whose program compiles three times as long: sleepstudy 1.3 s instead of 0.5 s) or
    forward (n_theta gradients, within ~1e-5: the large models), steps scaled to each
    parameter; symmetrized."""
    n = theta.shape[0]
    h = (1e-4 if central else 1e-5) * jnp.maximum(jnp.abs(theta), 0.1)
    steps = jnp.concatenate([jnp.diag(h), -jnp.diag(h)]) if central else jnp.diag(h)
    f, g, G = _gradients(fun, theta, f0, g0, known, steps)
    H = (G[:n] - G[n:]) / (2.0 * h[:, None]) if central else (G - g[None, :]) / h[:, None]
    return f, g, 0.5 * (H + H.T)


class Centered(NamedTuple):
    """The [X y] parts of the blocks after centering (:func:`center_xy`)."""

    A: jnp.ndarray
    C1: jnp.ndarray
    cls_N: jnp.ndarray


def center_xy(layout: Layout, blocks: Blocks, icpt: int | None) -> Centered | None:
    """With an intercept, the blocks' [X y] parts with the other X columns and y centered
    (host, NumPy): the criterion is the same function of theta (a unit triangular change
    of the [X y] columns), but without the cancellation of n * mean^2 against itself in
    the Schur complement. With x ~ 1000 +- 10 in ``(x | g)`` that cancellation made the
    gradient wrong in its 4th digit and L-BFGS stop at a spurious boundary point."""
    if icpt is None or layout.p == 0:
        return None
    from .float32 import center_blocks

    c = center_blocks(layout, blocks, icpt)
    return Centered(c.A, c.C1, c.cls_N)


@partial(jax.jit, static_argnames=("layout", "reml", "maxiter", "exact_hessian"))
def fit_program(
    theta0, blocks: Blocks, layout: Layout, reml: bool, maxiter: int = 1000,
    gtol=1e-7, exact_hessian: bool = True, centered: Centered | None = None,
) -> FitResult:
    """Fit theta, snap the boundary, and evaluate gradient, Hessian and estimates there.

    With ``centered`` the criterion, its gradient and Hessian are evaluated on the centered
    [X y] blocks (same function, better conditioned); the estimates on ``blocks`` as given.
    """
    ob = blocks if centered is None else blocks._replace(
        A=centered.A, C1=centered.C1, cls_N=centered.cls_N)
    fun = lambda t: objective(t, ob, layout, reml)  # noqa: E731
    sol = minimize(fun, theta0, maxiter=maxiter, gtol=gtol)
    signs = column_signs(sol.x, layout)
    theta = sol.x * signs
    diag = jnp.asarray(diag_mask(layout))
    tiny = diag & (jnp.abs(theta) < SINGULAR_TOL)
    snapped = jnp.where(tiny, 0.0, theta)
    # Evaluate only when there is something to snap (lax.cond runs one branch).
    f_snap = jax.lax.cond(jnp.any(tiny), fun, lambda t: jnp.inf * jnp.ones((), t.dtype), snapped)
    accept = f_snap <= sol.fun + 1e-10 * jnp.maximum(1.0, jnp.abs(sol.fun))
    theta = jnp.where(accept, snapped, theta)
    # The criterion is even in each column's sign: flipping a column flips its gradient;
    # at a snapped theta both are evaluated anew.
    f, g, H = _hessian(fun, theta, sol.fun, sol.grad * signs, ~accept, exact_hessian)
    return FitResult(
        solution=sol, theta=theta, fun=f, grad=g, hessian=H,
        boundary=tiny & accept, estimates=estimates(theta, blocks, layout),
    )


@dataclass
class OptSummary:
    """What the optimizer did, as MixedModels.jl's OptSummary records it.

    Example:
        >>> opt = m.opt                   # a fit's summary (or jaxmm.optimize_lmm's result)
        >>> opt.converged, round(opt.fmin, 3), opt.warnings
        (True, 1743.628, [])
        >>> opt.theta.round(4).tolist()
        [0.9667, 0.0152, 0.2309]
    """

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
    hessian: np.ndarray | None = None
    hessian_method: str = "autodiff"
    optimizer: str = "L-BFGS (optax, zoom line search), unconstrained theta"


def check_convergence(res: FitResult, grad_tol: float = 2e-3) -> tuple[float, float, list[str]]:
    """lme4's checks: the gradient (scaled by the Hessian) is small and the Hessian over the
    free parameters is positive definite."""
    g, H = np.asarray(res.grad), np.asarray(res.hessian)
    boundary = np.asarray(res.boundary)
    free = np.flatnonzero(~boundary)
    gfree, Hf = (g, H) if not boundary.any() else (g[free], H[np.ix_(free, free)])
    max_grad = float(np.max(np.abs(gfree))) if free.size else 0.0
    min_eig = float(np.min(np.linalg.eigvalsh(Hf))) if free.size else 0.0
    warnings = []
    status = int(res.solution.status)
    if status >= 2:
        warnings.append(f"optimizer: {STATUS_MESSAGES[status]} ({int(res.solution.n_iter)} iterations)")
    try:
        rel_grad = float(np.max(np.abs(np.linalg.solve(Hf, gfree)))) if free.size else 0.0
    except np.linalg.LinAlgError:
        rel_grad = max_grad
    if not np.isfinite(max_grad) or min(rel_grad, max_grad) > grad_tol:
        warnings.append(f"Model failed to converge with max|grad| = {max_grad:.3g} (tol = {grad_tol:g})")
    if free.size and not min_eig > 0:
        warnings.append(
            "Model is nearly unidentifiable: the Hessian of the criterion is not positive "
            f"definite at the optimum (smallest eigenvalue {min_eig:.3g})"
        )
    return max_grad, min_eig, warnings


def run_fit(devfun: DevFun, theta0=None, *, maxiter: int = 1000, gtol: float = 1e-7,
            center: bool = True) -> tuple[FitResult, OptSummary]:
    """Run :func:`fit_program` for one model; return its raw result and the summary.

    With an intercept (``devfun.icpt``) and ``center``, theta is optimized on the centered
    [X y] blocks (:func:`center_xy`)."""
    layout, blocks, reml = devfun.layout, devfun.host_blocks, devfun.reml
    th0 = default_theta0(layout) if theta0 is None else np.asarray(theta0, float)
    if th0.shape != (layout.n_theta,):
        raise ValueError(f"start must have {layout.n_theta} values (theta, lme4's order), got {th0.shape}")
    exact = exact_hessian_affordable(layout)
    centered = center_xy(layout, blocks, devfun.icpt) if center else None
    with compute():
        def program(th, b, tol, c):
            return fit_program(th, b, layout, reml, maxiter, tol, exact, c)

        # small models: XLA options for compile time (a third less; run time unchanged at
        # these sizes, while a large dense factorization runs slower under them); large
        # ones: YNNPACK for the matrix products only (programs.LARGE_CPU_OPTIONS)
        opts = CPU_OPTIONS if exact else LARGE_CPU_OPTIONS
        res = run_cached("lmm.fit_program", program, (layout, reml, maxiter, exact),
                         np.asarray(th0, np.float64), blocks, gtol, centered, to_host=True,
                         compiler_options=opts)
        # on one BLAS thread too: a threaded eigvalsh of a 3 x 3 Hessian costs 4x as much
        max_grad, min_eig, warnings = check_convergence(res)
    sol = res.solution
    opt = OptSummary(
        theta0=th0, theta=np.asarray(res.theta), fmin=float(res.fun), n_iter=int(sol.n_iter),
        n_eval=int(sol.n_eval), status=int(sol.status), message=STATUS_MESSAGES[int(sol.status)],
        max_grad=max_grad, hessian_min_eig=min_eig, converged=not warnings,
        boundary=[int(i) for i in np.flatnonzero(res.boundary)], warnings=warnings,
        hessian=np.asarray(res.hessian),
        hessian_method=("central differences of the autodiff gradient" if exact
                        else "forward differences of the autodiff gradient"),
    )
    return res, opt


def optimize_lmm(devfun: DevFun, theta0=None, *, maxiter: int = 1000, gtol: float = 1e-7) -> OptSummary:
    """Fit theta for one model and check convergence (lme4's ``optimizeLmer`` + ``checkConv``).

    Example:
        >>> import jaxmm
        >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> opt = jaxmm.optimize_lmm(jaxmm.mk_devfun(d))
        >>> opt.converged, round(opt.fmin, 4)
        (True, 1743.6283)
    """
    return run_fit(devfun, theta0, maxiter=maxiter, gtol=gtol)[1]
