"""Differentiable mixed models: the likelihood as a JAX building block.

From a formula and data, :func:`model` builds a :class:`MixedDesign` (a pytree: per-row
arrays, the static sparsity pattern and the crossproducts; static structure in its aux
data). Pure functions of it — each jit/grad/vmap-able, with the response ``y``, prior
weights ``w`` and the fixed-effects matrix ``X`` as ordinary arguments:

    objective(theta, d, y, w, X)                  REML criterion / ML deviance (lme4's devfun)
    loglik(beta, theta, sigma, d, y, w, X)        marginal log-likelihood (u integrated out)
    log_joint(beta, theta, sigma, u, d, y, w, X)  log p(y, u): Laplace, MCMC over u
    conditional_modes(theta, d, y, w, X, beta)    beta-hat, u, b = Lambda u, sigma-hat at theta
    fit(d, y, w, X)                               (beta, theta, sigma)-hat, differentiable in
                                                  y, w, X by the implicit function theorem

Conventions (lme4's): y = X beta + Z Lambda(theta) u + e, u ~ N(0, sigma^2 I),
e_i ~ N(0, sigma^2 / w_i); theta in lme4's order; u flat in lme4's order (terms by
decreasing number of levels, then level, then column). Use float64 (``with jaxmm.x64():``).

Example:
    >>> import jaxmm, jax, jax.numpy as jnp
    >>> F = jaxmm.functional
    >>> d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
    >>> with jaxmm.x64():   # the REML criterion and its gradient with respect to the data
    ...     f, g = jax.value_and_grad(F.objective, 2)(jnp.array([0.8483]), d, d.y)
    ...     print(round(float(f), 3), g.shape)
    319.654 (30,)
"""

from .design import MixedDesign, from_design, model
from .implicit import FitEstimates, fit
from .likelihood import (
    Conditional,
    conditional_modes,
    lambda_u,
    log_joint,
    loglik,
    objective,
    z_times,
)

__all__ = [
    "MixedDesign", "model", "from_design", "objective", "loglik", "log_joint",
    "conditional_modes", "Conditional", "fit", "FitEstimates", "lambda_u", "z_times",
]
