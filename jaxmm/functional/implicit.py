"""The fitted estimates as a differentiable function of the data (implicit function theorem).

Forward: L-BFGS (optax, :func:`jaxmm.optimize.lbfgs.minimize`) on unconstrained theta, signs normalized,
numerically-zero diagonals snapped to exactly zero when that does not raise the criterion,
then Newton steps with the exact Hessian on the free parameters to machine precision.

Backward (``jax.custom_vjp``): at the optimum grad_theta f(theta_hat, data) = 0, so
d theta_hat = -H^-1 d_data grad_theta f, H the exact Hessian of the profiled criterion
(forward-over-reverse one direction at a time: safe on XLA's CPU thread pool). Boundary
parameters — diagonal entries of a relative factor that are exactly zero at the optimum
(a singular fit) — are treated as an active constraint: held fixed at zero, they get no
derivative, and the Hessian is restricted to the free parameters. beta_hat and sigma_hat
are then ordinary differentiable functions of (theta_hat, data). Reverse mode only
(``jax.grad``, ``jax.vjp``, ``jax.jacrev``); the optimizer is never unrolled.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ..core.objective import sequential_hessian
from ..optimize.lbfgs import minimize
from ..optimize.lmm import SINGULAR_TOL, column_signs, diag_mask
from .crossprod import resolve
from .design import MixedDesign
from .likelihood import _check_theta, conditional_modes, objective


class FitEstimates(NamedTuple):
    """beta_hat (p,), theta_hat (n_theta,) and sigma_hat of a fit (a pytree).

    Example:
        >>> import jax
        >>> F = jaxmm.functional
        >>> d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> with jaxmm.x64():
        ...     est = jax.jit(F.fit)(d)
        >>> est._fields
        ('beta', 'theta', 'sigma')
        >>> round(float(est.beta[0]), 1), round(float(est.theta[0]), 4), round(float(est.sigma), 2)
        (1527.5, 0.8483, 49.51)
    """

    beta: jnp.ndarray
    theta: jnp.ndarray
    sigma: jnp.ndarray


def _free(theta: jnp.ndarray, design: MixedDesign) -> jnp.ndarray:
    """True for parameters not on the boundary (diagonals exactly zero are fixed)."""
    return ~(jnp.asarray(diag_mask(design.layout)) & (theta == 0.0))


def _newton(fun, theta, free, steps: int):
    """Newton steps on the free parameters. A step is kept if it leaves f unchanged up to
    rounding and lowers either f or the largest free gradient (near the optimum f cannot
    resolve the last digits of theta; the gradient can)."""
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    mask2 = free[:, None] & free[None, :]
    vg = jax.value_and_grad(fun)

    def masked(th):
        f, g = vg(th)
        return f, jnp.where(free, g, 0.0)

    def body(_, carry):
        th, f, g = carry
        H = jnp.where(mask2, sequential_hessian(fun, th), eye)
        new = th - jnp.linalg.solve(H, g)
        f_new, g_new = masked(new)
        tol = 1e-10 * (1.0 + jnp.abs(f))
        gmax, gmax_new = jnp.max(jnp.abs(g)), jnp.max(jnp.abs(g_new))
        ok = jnp.isfinite(f_new) & (f_new <= f + tol) & ((f_new < f - tol) | (gmax_new < gmax))
        return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), (new, f_new, g_new), (th, f, g))

    return jax.lax.fori_loop(0, steps, body, (theta, *masked(theta)))[0]


def _optimize(design: MixedDesign, theta0, data, maxiter: int, newton_steps: int):
    fun = lambda t: objective(t, design, *data)  # noqa: E731
    sol = minimize(fun, theta0, maxiter=maxiter)
    theta = sol.x * column_signs(sol.x, design.layout)
    tiny = jnp.asarray(diag_mask(design.layout)) & (jnp.abs(theta) < SINGULAR_TOL)
    snapped = jnp.where(tiny, 0.0, theta)
    f_snap = fun(snapped)
    accept = jnp.any(tiny) & (f_snap <= sol.fun + 1e-10 * jnp.maximum(1.0, jnp.abs(sol.fun)))
    theta = jnp.where(accept, snapped, theta)
    theta = _newton(fun, theta, _free(theta, design), newton_steps)
    return jax.lax.stop_gradient(theta)


# Compiled once per design structure: called eagerly, the optimizer's loops would otherwise be
# traced and compiled again on every call (each call closes over a new objective).
_optimize_jit = jax.jit(_optimize, static_argnums=(3, 4))


def _theta_hat_impl(design, theta0, data, maxiter, newton_steps):
    return _optimize_jit(design, theta0, data, maxiter, newton_steps)


_theta_hat = jax.custom_vjp(_theta_hat_impl, nondiff_argnums=(3, 4))


def _fwd(design, theta0, data, maxiter, newton_steps):
    theta = _optimize_jit(design, theta0, data, maxiter, newton_steps)
    return theta, (design, data, theta)


def _bwd(maxiter, newton_steps, res, g):
    design, data, theta = res
    return (None, None, _data_cotangent(design, data, theta, g))


@jax.jit
def _data_cotangent(design, data, theta, g):
    free = _free(theta, design)
    fun = lambda t, dat: objective(t, design, *dat)  # noqa: E731
    H = sequential_hessian(lambda t: fun(t, data), theta)
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    H = jnp.where(free[:, None] & free[None, :], H, eye)
    lam = jnp.where(free, jnp.linalg.solve(H, jnp.where(free, g, 0.0)), 0.0)
    # d theta_hat = -H^-1 (d/d data) grad_theta f  =>  data cotangent = -d/d data <grad f, lam>
    return jax.grad(lambda dat: -jnp.vdot(jax.grad(fun)(theta, dat), lam))(data)


_theta_hat.defvjp(_fwd, _bwd)


def fit(
    design: MixedDesign, y=None, w=None, X=None, *, theta0=None, maxiter: int = 500,
    newton_steps: int = 3,
) -> FitEstimates:
    """Fit the model to (y, w, X) and return (beta_hat, theta_hat, sigma_hat), differentiable
    with respect to y, w and X by the implicit function theorem (reverse mode).

    Jit- and vmap-able (e.g. over a batch of responses). Parameters on the boundary
    (a zero diagonal of a relative factor) are held fixed in the derivative.

    Example:
        >>> import jaxmm, jax
        >>> F = jaxmm.functional
        >>> d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> with jaxmm.x64():   # sigma-hat and its gradient with respect to every y_i
        ...     s, g = jax.jit(jax.value_and_grad(lambda y: F.fit(d, y).sigma))(d.y)
        ...     print(round(float(s), 2), g.shape)
        49.51 (30,)
    """
    y, w, X = resolve(design, y, w, X)
    y = jnp.asarray(y)
    theta0 = jnp.asarray(design.theta0 if theta0 is None else theta0, y.dtype)
    _check_theta(design, theta0)
    data = (y, w, X)
    theta = _theta_hat(design, theta0, data, maxiter, newton_steps)
    c = conditional_modes(theta, design, y, w, X)
    return FitEstimates(beta=c.beta, theta=theta, sigma=c.sigma)
