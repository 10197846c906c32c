"""lme4's ``optimizeLmer``: minimize the profiled criterion over theta, then check the optimum.

One jit-compiled program does it all (one dispatch, one compile, vmappable), in one loop
that evaluates the criterion and its gradient once per step: BFGS (L-BFGS for large models,
:mod:`jaxmm.optimize.bfgs`) on unconstrained theta; column signs of each T normalized so
diagonals are >= 0; diagonals that are numerically zero set to exactly zero when that does
not raise the criterion (a boundary, i.e. singular, fit); then the exact gradient and
Hessian at the optimum for the convergence checks, and the conditional estimates there.
The Hessian is taken by central differences of the exact gradient (``exact_hessian``:
2 n_theta gradients, within ~1e-8 of autodiff, and a third of forward-over-reverse's
compile time), or for large models by forward differences (n_theta gradients, within
~1e-5: each gradient of InstEval costs ~50 ms); :meth:`jaxmm.DevFun.hessian` always gives
the autodiff one.
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
from .bfgs import Tolerances, bfgs_going, bfgs_init, bfgs_result, bfgs_trial, bfgs_update
from .lbfgs import STATUS_MESSAGES, Solution

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
#: Curvature pairs the fitting program's L-BFGS keeps.
LBFGS_MEMORY = 10


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


def _difference_steps(theta: jnp.ndarray, central: bool) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The steps (rows) at which the Hessian's differences take the gradient, and their
    sizes h: scaled to each parameter; +h and -h (central) or +h (forward)."""
    h = (1e-4 if central else 1e-5) * jnp.maximum(jnp.abs(theta), 0.1)
    return (jnp.concatenate([jnp.diag(h), -jnp.diag(h)]) if central else jnp.diag(h)), h


def _hessian_of(G: jnp.ndarray, g: jnp.ndarray, h: jnp.ndarray, central: bool) -> jnp.ndarray:
    """The symmetrized Hessian from the gradients G at the difference steps."""
    n = g.shape[0]
    H = (G[:n] - G[n:]) / (2.0 * h[:, None]) if central else (G - g[None, :]) / h[:, None]
    return 0.5 * (H + H.T)


class _Post(NamedTuple):
    """After the optimum (``fit_program``'s loop): ``phase`` 0 optimizing, 1 trying the
    snapped theta, 2 gradients for the Hessian, 3 done; ``k`` the next difference step."""

    phase: jnp.ndarray
    k: jnp.ndarray
    theta: jnp.ndarray
    snapped: jnp.ndarray
    tiny: jnp.ndarray
    accept: jnp.ndarray
    f: jnp.ndarray
    g: jnp.ndarray
    G: jnp.ndarray


@partial(jax.jit, static_argnames=("layout", "reml", "maxiter", "exact_hessian"))
def fit_program(
    theta0, blocks: Blocks, layout: Layout, reml: bool, maxiter: int = 1000,
    gtol=1e-7, exact_hessian: bool = True, centered: Centered | None = None,
) -> FitResult:
    """Fit theta, snap the boundary, and evaluate gradient, Hessian and estimates there.

    One ``lax.while_loop`` evaluates the criterion's value and gradient once per step, at
    the point its phase asks for: the optimizer's trial point (dense BFGS for small
    models, L-BFGS with :data:`LBFGS_MEMORY` pairs for large ones: see
    :mod:`jaxmm.optimize.bfgs`), then the snapped theta when a diagonal is numerically zero,
    then theta plus each difference step of the Hessian. So the program traces the
    criterion's gradient once: with a second site for the Hessian's gradients, the first
    fit in a process took ~0.2 s longer for sleepstudy, ~0.3 s for InstEval, ~0.8 s for star.

    With ``centered`` the criterion, its gradient and Hessian are evaluated on the centered
    [X y] blocks (same function, better conditioned); the estimates on ``blocks`` as given.
    """
    ob = blocks if centered is None else blocks._replace(
        A=centered.A, C1=centered.C1, cls_N=centered.cls_N)
    vg = jax.value_and_grad(lambda t: objective(t, ob, layout, reml))
    tol = Tolerances(gtol=gtol, gtol_rel=1e-7)
    n = theta0.shape[0]
    K = 2 * n if exact_hessian else n
    diag = jnp.asarray(diag_mask(layout))
    where = jnp.where
    state = bfgs_init(theta0, memory=None if exact_hessian else LBFGS_MEMORY)
    zero_n = jnp.zeros_like(theta0)
    post = _Post(phase=jnp.asarray(0), k=jnp.asarray(0), theta=theta0, snapped=theta0,
                 tiny=diag & False, accept=jnp.asarray(False), f=jnp.zeros_like(state.f),
                 g=zero_n, G=jnp.zeros((K, n), theta0.dtype))

    def point(st, po):
        steps, _ = _difference_steps(po.theta, exact_hessian)
        return where(po.phase == 0, bfgs_trial(st), where(po.phase == 1, po.snapped,
                                                          po.theta + steps[po.k]))

    def body(c):
        st, po = c
        f, g = vg(point(st, po))
        # phase 0: an optimizer step; at its end, normalize signs and look for zeros
        # (lax.cond: after the optimum its update is skipped, not computed and discarded)
        st1 = jax.lax.cond(po.phase == 0,
                           lambda: bfgs_update(st, f, g, jnp.zeros((), f.dtype), tol), lambda: st)
        ended = (po.phase == 0) & ~bfgs_going(st1, 10 * maxiter, maxiter)
        signs = column_signs(st1.x, layout)
        theta = st1.x * signs
        tiny = diag & (jnp.abs(theta) < SINGULAR_TOL)
        at_opt = _Post(where(jnp.any(tiny), 1, 2), po.k, theta, where(tiny, 0.0, theta), tiny,
                       po.accept, st1.f, st1.g * signs, po.G)
        # phase 1: keep the snapped theta if the criterion did not rise there
        accept = f <= po.f + 1e-10 * jnp.maximum(1.0, jnp.abs(po.f))
        snap = _Post(jnp.asarray(2), po.k, where(accept, po.snapped, po.theta), po.snapped,
                     po.tiny, accept, where(accept, f, po.f), where(accept, g, po.g), po.G)
        # phase 2: a gradient for the Hessian
        grad = po._replace(phase=where(po.k + 1 >= K, 3, 2), k=po.k + 1, G=po.G.at[po.k].set(g))
        po_n = jax.tree_util.tree_map(
            lambda a, b, c, d: where(po.phase == 0, where(ended, a, d), where(po.phase == 1, b, c)),
            at_opt, snap, grad, po)
        return st1, po_n

    state, post = jax.lax.while_loop(lambda c: c[1].phase < 3, body, (state, post))
    r = bfgs_result(state, tol)
    sol = Solution(x=r.x, fun=r.fun, grad=r.grad, n_iter=r.n_iter, n_eval=r.n_eval,
                   status=r.status)
    _, h = _difference_steps(post.theta, exact_hessian)
    return FitResult(
        solution=sol, theta=post.theta, fun=post.f, grad=post.g,
        hessian=_hessian_of(post.G, post.g, h, exact_hessian),
        boundary=post.tiny & post.accept, estimates=estimates(post.theta, blocks, layout),
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
    optimizer: str = "BFGS (strong-Wolfe line search), unconstrained theta"


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
        optimizer=(("BFGS" if exact else f"L-BFGS ({LBFGS_MEMORY} pairs)")
                   + " with a strong-Wolfe line search, unconstrained theta"),
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
