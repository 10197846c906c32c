"""The variance parameters (theta, sigma) at the optimum: their asymptotic covariance and the
derivatives of vcov(beta) with respect to them — the two ingredients of Satterthwaite's
degrees of freedom and of Wald intervals for variance components.

lmerTest takes both numerically (numDeriv); here the derivatives are exact. The deviance as a
function of (theta, sigma), lmerTest's ``devfun_vp``, is

    d(theta, sigma) = a(theta) + b(theta) / sigma^2 + nu log(2 pi sigma^2),

with a = log|L|^2 (+ log|RX|^2 for REML), b = the penalized residual sum of squares and
nu = n (ML) or n - p (REML). At sigma^2 = b / nu its Hessian follows from the Hessian H_f of the
profiled criterion (which the fit already computed exactly) and the gradient b' of b:

    d_tt = H_f + nu b' b'^T / b^2,   d_ts = -2 b' / sigma^3,   d_ss = 4 nu / sigma^2.

vcov(beta) = sigma^2 M(theta) with M = (RX RX')^{-1}; its Jacobian comes from forward-mode
autodiff through the factorization, one direction at a time.
"""

from __future__ import annotations

import warnings
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np

from ..core.layout import Blocks, Layout
from ..core.solve import estimates
from ..errors import ConvergenceWarning
from ..precision import compute
from ..programs import run_cached

EIGEN_TOL = 1e-8  # lmerTest's tolerance on the Hessian's eigenvalues


class VarPar(NamedTuple):
    """Asymptotic quantities of the variance parameters (theta..., sigma).

    Attributes:
        names: parameter names (theta's lme4 names, then "sigma").
        values: (k,) the estimates.
        hessian: (k, k) Hessian of the deviance in (theta, sigma).
        vcov: (k, k) asymptotic covariance, 2 H^+ (Moore-Penrose on eigenvalues > 1e-8).
        vcov_beta: (p, p) vcov of the fixed effects.
        jac: (k, p, p) derivative of vcov(beta) with respect to each parameter.

    Example:
        >>> vp = varpar(m)
        >>> vp.names[-1], vp.vcov.shape, vp.vcov_beta.shape
        ('sigma', (4, 4), (2, 2))
        >>> round(float(vp.values[-1]), 3)   # sigma
        25.592
    """

    names: tuple[str, ...]
    values: np.ndarray
    hessian: np.ndarray
    vcov: np.ndarray
    vcov_beta: np.ndarray
    jac: np.ndarray


def _cov_factor(theta, blocks: Blocks, layout: Layout):
    e = estimates(theta, blocks, layout)
    Ri = jsl.solve_triangular(e.RX, jnp.eye(layout.p, dtype=e.RX.dtype), lower=True)
    return e.pwrss, Ri.T @ Ri


@partial(jax.jit, static_argnames=("layout",))
def pwrss_and_vcov_jacobian(theta, blocks: Blocks, layout: Layout):
    """b(theta), M(theta) = (RX RX')^{-1}, and their derivatives (b', dM/dtheta_i).

    Forward mode, one direction at a time (``lax.map``): vmapped directions would batch the
    dense factorization's LAPACK calls (see core.objective.sequential_hessian).
    """
    fun = lambda t: _cov_factor(t, blocks, layout)  # noqa: E731
    b, M = fun(theta)
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    db, dM = jax.lax.map(lambda v: jax.jvp(fun, (theta,), (v,))[1], eye)
    return b, M, db, dM


def varpar(fit) -> VarPar:
    """Covariance of (theta, sigma) and the Jacobian of vcov(beta), for a fitted model.

    Example:
        >>> vp = varpar(m)
        >>> vp.names
        ('Subject.(Intercept)', 'Subject.Days.(Intercept)', 'Subject.Days', 'sigma')
        >>> vp.jac.shape
        (4, 2, 2)
    """
    from ..results.guards import require_lmm

    require_lmm(fit, "varpar")
    layout, blocks = fit.devfun.layout, fit.devfun.blocks
    theta = np.asarray(fit.opt.theta, float)
    with compute():
        # through the program store: a later process loads it instead of tracing it anew
        # (InstEval: ~0.25 s of a cold summary)
        b, M, db, dM = run_cached(
            "varpar.pwrss_and_vcov_jacobian",
            lambda th, bl: pwrss_and_vcov_jacobian(th, bl, layout), (layout,),
            np.asarray(theta, np.float64), blocks, to_host=True,
        )
    Hf = fit.opt.hessian
    if Hf is None:
        Hf = fit.devfun.hessian(theta)
    Hf = np.asarray(Hf, float)
    b, M, db, dM = float(b), np.asarray(M), np.asarray(db), np.asarray(dM)
    nu = fit.nobs - (fit.p if fit.reml else 0)
    s2 = b / nu
    s = np.sqrt(s2)
    k = theta.size
    H = np.empty((k + 1, k + 1))
    H[:k, :k] = Hf + nu * np.outer(db, db) / b**2
    H[:k, k] = H[k, :k] = -2.0 * db / s**3
    H[k, k] = 4.0 * nu / s2
    H = 0.5 * (H + H.T)
    vals, vecs = np.linalg.eigh(H)
    neg = vals < -EIGEN_TOL
    if neg.any():
        warnings.warn(
            f"the Hessian of the deviance in (theta, sigma) has {int(neg.sum())} negative "
            f"eigenvalue(s) ({', '.join(f'{v:.1e}' for v in vals[neg])}): the model may not "
            "have converged; degrees of freedom use its positive part",
            ConvergenceWarning, stacklevel=3,
        )
    pos = vals > EIGEN_TOL
    Hinv = (vecs[:, pos] / vals[pos]) @ vecs[:, pos].T
    jac = np.concatenate([s2 * dM, (2.0 * s * M)[None]], axis=0)
    names = tuple(fit.theta.index) + ("sigma",)
    return VarPar(
        names=names, values=np.append(theta, s), hessian=H, vcov=2.0 * Hinv,
        vcov_beta=s2 * M, jac=jac,
    )
