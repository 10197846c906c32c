"""The profiled ML deviance and REML criterion as pure JAX functions of theta.

    ML:   ldL2 + n     * (1 + log(2 pi pwrss / n))
    REML: ldL2 + ldRX2 + (n-p) * (1 + log(2 pi pwrss / (n-p)))

where ldL2 = log det(Lambda'Z'Z Lambda + I), ldRX2 = log det(RX RX') and pwrss is the
penalized weighted residual sum of squares — all read off the blocked Cholesky factor of
the augmented system [Z Lambda, X, y]. Works under ``jax.jit``, ``jax.grad``,
``jax.hessian`` and ``jax.vmap`` (over theta or over the y-dependent blocks); :func:`hessian`
uses :func:`sequential_hessian`, which is safe on XLA's CPU thread pool.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp

from .blocked import partial_factor
from .layout import Blocks, Layout, row_weights
from .logchol import weighted_logchol_t


def objective(theta: jnp.ndarray, blocks: Blocks, layout: Layout, reml: bool = True,
              batched: bool = False) -> jnp.ndarray:
    """REML criterion (``reml=True``) or ML deviance of a linear mixed model at ``theta``.

    ``layout`` and ``reml`` are static. This is lme4's ``devFunOnly`` objective.
    ``batched``: set it when vmapping over many fits (see :func:`partial_factor`).

    Example:
        >>> import jaxmm, jax, jax.numpy as jnp
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> d = m.devfun
        >>> with jaxmm.x64():
        ...     g = jax.grad(objective)(jnp.asarray(m.theta_vector), d.blocks, d.layout, True)
        ...     print(bool(abs(g).max() < 1e-3))
        True
    """
    part = partial_factor(theta, blocks, layout, batched)
    N = blocks.n - (layout.p if reml else 0)
    w = row_weights(layout, reml, N, theta.dtype)
    return part.logdet1 + weighted_logchol_t(part.St, w) + N * (1.0 + jnp.log(2.0 * math.pi / N))


@partial(jax.jit, static_argnames=("layout", "reml"))
def objective_jit(theta, blocks: Blocks, layout: Layout, reml: bool = True):
    """Jit-compiled :func:`objective`."""
    return objective(theta, blocks, layout, reml)


@partial(jax.jit, static_argnames=("layout", "reml"))
def value_and_grad(theta, blocks: Blocks, layout: Layout, reml: bool = True):
    """Jit-compiled objective value and exact gradient."""
    return jax.value_and_grad(objective)(theta, blocks, layout, reml)


def sequential_hessian(fun, theta: jnp.ndarray) -> jnp.ndarray:
    """Exact Hessian by forward-over-reverse, one direction at a time (``lax.map``).

    ``jax.hessian`` vmaps the directions, which turns the dense factorizations into batched
    LAPACK calls; two of those scheduled concurrently on XLA's CPU thread pool can deadlock
    it (each waits for pool threads the other holds). One direction at a time avoids that.
    """
    grad = jax.grad(fun)
    eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
    H = jax.lax.map(lambda v: jax.jvp(grad, (theta,), (v,))[1], eye)
    return 0.5 * (H + H.T)


@partial(jax.jit, static_argnames=("layout", "reml"))
def hessian(theta, blocks: Blocks, layout: Layout, reml: bool = True):
    """Jit-compiled exact Hessian of the objective (forward over reverse)."""
    return sequential_hessian(lambda t: objective(t, blocks, layout, reml), theta)
