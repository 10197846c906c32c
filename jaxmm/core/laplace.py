"""The GLMM deviance lme4 optimizes, and its exact gradient by implicit differentiation.

Laplace (``nagq=1``): ``sum(-2 log p(y | u*)) + |u*|^2 + log det(L L')`` with L the Cholesky
factor of ``Lambda'Z'WZ Lambda + I`` at the conditional modes u* and Fisher weights W
(lme4's ``ldL2 + sqrL + aic``). Adaptive Gauss-Hermite (``nagq > 1``, one scalar term):
lme4's ``glmerAGQ``, on the deviance-residual scale.

Gradient. With D(u, p) the deviance at modes u and parameters p, and u*(p) the PIRLS
solution (the root of grad_u pdev), the total derivative is
``dD/dp = D_p - lambda' (grad_u pdev)_p`` where ``lambda = H^{-1} D_u`` and H the Hessian of
the penalized deviance in u: one extra solve with the factor at u* (the implicit function
theorem; D_u is not zero because log det depends on u through the weights). :func:`deviance`
returns a function whose value is D and whose autodiff gradient is this total derivative
(u* and lambda enter as constants), so ``jax.grad`` and optax see the exact gradient.

Example:
    >>> import numpy as np, jax.numpy as jnp, jaxmm
    >>> from jaxmm.core.pirls import from_design
    >>> cbpp = jaxmm.datasets.load("cbpp")
    >>> d = jaxmm.lformula("incidence ~ period + (1|herd)", cbpp)
    >>> fam = jaxmm.poisson()
    >>> data, lay = from_design(d, fam, fam.response(d.y, None, np.zeros(56), "y"))
    >>> with jaxmm.x64():
    ...     f = deviance(lay, nagq=1, beta_in_pirls=False)
    ...     val, aux = f(jnp.asarray([1.0, 0.5, -1.0, -1.0, -1.0]), data, jnp.zeros(15))
    >>> bool(aux.converged)
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .pirls import (
    GlmmData,
    GlmmLayout,
    factor,
    linear_predictor,
    logdet_weights,
    penalized_deviance,
    pirls,
    solve,
    unpack,
    z_lambda,
)

sg = jax.lax.stop_gradient


def gh_rule(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights for the standard normal density (lme4's ``GHrule``)."""
    z, w = np.polynomial.hermite_e.hermegauss(k)
    return z, w / w.sum()


def laplace(v, theta, beta, data: GlmmData, lay: GlmmLayout, with_beta: bool):
    """lme4's Laplace deviance at modes ``v`` (not necessarily optimal)."""
    u, b = unpack(v, beta, lay, with_beta)
    zl = z_lambda(theta, data, lay)
    eta = linear_predictor(u, b, zl, data, lay)
    fam = lay.family
    w = fam.fisher_weights(eta, data.resp)
    return jnp.sum(fam.minus2loglik(eta, data.resp)) + u @ u + logdet_weights(w, zl, data, lay)


def agq(v, theta, beta, data: GlmmData, lay: GlmmLayout, nagq: int):
    """lme4's adaptive Gauss-Hermite deviance (one scalar random-effects term)."""
    z, wk = gh_rule(nagq)
    u = v
    zl = z_lambda(theta, data, lay)
    eta0 = linear_predictor(u, beta, zl, data, lay)
    fam, r, idx, n1 = lay.family, data.resp, data.idx[0], lay.nlevels[0]
    zt = zl[0][:, 0]
    w = fam.fisher_weights(eta0, r)
    L2 = 1.0 + jax.ops.segment_sum(w * zt * zt, idx, n1)
    sd = 1.0 / jnp.sqrt(L2)
    shift = jnp.asarray(z)[None, :] * sd[:, None]  # (n1, K)
    etak = eta0[:, None] + zt[:, None] * shift[idx]
    rk = type(r)(*(a[:, None] for a in r))
    devc = jax.ops.segment_sum(fam.dev_resid(etak, rk), idx, n1) + (u[:, None] + shift) ** 2
    devc0 = jax.ops.segment_sum(fam.dev_resid(eta0, r), idx, n1) + u * u
    logmult = jax.nn.logsumexp(
        jnp.log(wk)[None, :] - 0.5 * (devc - devc0[:, None]) + 0.5 * jnp.asarray(z)[None, :] ** 2,
        axis=1)
    return jnp.sum(devc0) + jnp.sum(jnp.log(L2)) - 2.0 * jnp.sum(logmult)


def observed_weights(eta, data: GlmmData, lay: GlmmLayout):
    """Half the second derivative of the deviance residuals in eta (Newton weights)."""
    fam = lay.family
    if fam.canonical:
        return fam.fisher_weights(eta, data.resp)
    g = jax.grad(lambda e: jnp.sum(fam.dev_resid(e, data.resp)))
    return 0.5 * jax.jvp(g, (eta,), (jnp.ones_like(eta),))[1]


def deviance(lay: GlmmLayout, nagq: int, beta_in_pirls: bool):
    """``f(params, data, v0) -> (deviance, PirlsResult)`` with the exact implicit gradient.

    ``beta_in_pirls`` (lme4's nAGQ = 0 stage): params = theta, beta updated by PIRLS;
    otherwise params = (theta, beta). ``v0`` starts PIRLS.
    """
    nt = lay.n_theta

    def split(params):
        return (params, None) if beta_in_pirls else (params[:nt], params[nt:])

    def D(v, theta, beta, data):
        if nagq > 1 and not beta_in_pirls:
            return agq(v, theta, beta, data, lay, nagq)
        return laplace(v, theta, beta, data, lay, beta_in_pirls)

    def half_grad(v, theta, beta, data):
        return 0.5 * jax.grad(penalized_deviance)(v, theta, beta, data, lay, beta_in_pirls)

    def f(params, data: GlmmData, v0):
        theta, beta = split(params)
        sol = pirls(sg(theta), None if beta is None else sg(beta), v0, data, lay, beta_in_pirls)
        v = sg(sol.v)
        p0 = sg(params)
        th0, b0 = split(p0)
        val, vjp = jax.vjp(lambda v_, p_: D(v_, *split(p_), data), v, p0)
        gv, gp = vjp(jnp.ones_like(val))
        u, b = unpack(v, b0, lay, beta_in_pirls)
        zl = z_lambda(th0, data, lay)
        eta = linear_predictor(u, b, zl, data, lay)
        F = factor(observed_weights(eta, data, lay), zl, data, lay, beta_in_pirls)
        lam = sg(solve(F, gv, data, lay))
        corr = -(lam @ half_grad(v, theta, beta, data))
        out = val + sg(gp) @ (params - p0) + (corr - sg(corr))
        return out, sol

    return f
