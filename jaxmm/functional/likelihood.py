"""Pure likelihood functions of a :class:`MixedDesign`: each is jit/grad/vmap-able, with the
response ``y``, prior weights ``w`` and the fixed-effects matrix ``X`` as ordinary
(differentiable) arguments; ``None`` means the design's own (``w=None``: unit weights).

Model (lme4's): y = X beta + Z Lambda(theta) u + e, u ~ N(0, sigma^2 I),
e_i ~ N(0, sigma^2 / w_i) independently. Prior weights scale the residual precision; they
must be positive. Call these inside ``with jaxmm.x64():`` (or with float64 enabled) for
float64 results.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax.numpy as jnp

from ..core.blocked import T_of
from ..core.layout import split_theta
from ..core.objective import objective as _core_objective
from ..core.solve import Estimates, _lambda_rest, estimates
from ..errors import ModelError
from .crossprod import blocks_for, resolve
from .design import MixedDesign


def _check_theta(design: MixedDesign, theta) -> jnp.ndarray:
    theta = jnp.asarray(theta)
    if theta.shape != (design.n_theta,):
        raise ModelError(f"theta must have shape ({design.n_theta},) in lme4's order, got {theta.shape}")
    return theta


def _logw(w, dtype) -> jnp.ndarray:
    return jnp.zeros((), dtype) if w is None else jnp.sum(jnp.log(jnp.asarray(w)))


def objective(theta, design: MixedDesign, y=None, w=None, X=None) -> jnp.ndarray:
    """REML criterion (``design.reml``) or ML deviance at ``theta``: lme4's ``devfun``.

    With weights it includes ``-sum(log w)``, as lme4 does.

    Example:
        >>> import jaxmm, jax, jax.numpy as jnp
        >>> F = jaxmm.functional
        >>> d = F.model("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> with jaxmm.x64():
        ...     th = jnp.array([0.9667, 0.0152, 0.2309])
        ...     print(round(float(F.objective(th, d)), 2), jax.grad(F.objective, 2)(th, d, d.y).shape)
        1743.63 (180,)
    """
    theta = _check_theta(design, theta)
    y, w, X = resolve(design, y, w, X)
    blocks = blocks_for(design, y, w, X)
    return _core_objective(theta, blocks, design.layout, design.reml) - _logw(w, theta.dtype)


class Conditional(NamedTuple):
    """Conditional estimates at theta (given beta, or at beta-hat(theta)).

    Attributes:
        beta: (p,) fixed effects.
        u: (n_u,) spherical random effects, lme4's order.
        b: (n_u,) random effects b = Lambda u.
        sigma: residual standard deviation sqrt(pwrss / (n - p)) (REML) or / n (ML),
            at beta-hat(theta).
        estimates: the engine's factorization record (pwrss, ldL2, RX, ...).

    Example:
        >>> import jax.numpy as jnp
        >>> F = jaxmm.functional
        >>> d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> with jaxmm.x64():
        ...     c = F.conditional_modes(jnp.array([0.8483]), d)
        >>> type(c).__name__, c.u.shape, round(float(c.beta[0]), 1), round(float(c.sigma), 2)
        ('Conditional', (6,), 1527.5, 49.51)
    """

    beta: jnp.ndarray
    u: jnp.ndarray
    b: jnp.ndarray
    sigma: jnp.ndarray
    estimates: Estimates


def lambda_u(theta, design: MixedDesign, u) -> jnp.ndarray:
    """b = Lambda(theta) u for a flat u (lme4's order).

    Example:
        >>> import jax.numpy as jnp
        >>> d = jaxmm.functional.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> jaxmm.functional.lambda_u(jnp.array([0.5]), d, jnp.arange(6.0)).tolist()
        [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    """
    lay = design.layout
    T = [T_of(t, q) for t, q in zip(split_theta(jnp.asarray(theta), lay), lay.qs)]
    n1 = lay.l1 * lay.q1
    b1 = (u[:n1].reshape(lay.l1, lay.q1) @ T[0].T).reshape(-1)
    return jnp.concatenate([b1, _lambda_rest(u[n1:], tuple(T[1:]), lay)])


def z_times(design: MixedDesign, b) -> jnp.ndarray:
    """Z b per row (n,) for a flat b in lme4's order.

    Example:
        >>> import jax.numpy as jnp
        >>> d = jaxmm.functional.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> jaxmm.functional.z_times(d, jnp.arange(6.0))[:7].tolist()   # rows 0-4 are batch A
        [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0]
    """
    lay = design.layout
    n1 = lay.l1 * lay.q1
    b1 = b[:n1].reshape(lay.l1, lay.q1)
    out = jnp.sum(design.Z1 * b1[design.idx1], axis=1)
    if design.zr_col.shape[1]:
        out = out + jnp.sum(design.zr_val * b[n1:][design.zr_col], axis=1)
    return out


def conditional_modes(theta, design: MixedDesign, y=None, w=None, X=None, beta=None) -> Conditional:
    """Conditional modes of the random effects at ``theta`` — given ``beta``, or at
    beta-hat(theta) when ``beta`` is None (lme4's ``ranef``/``fixef`` at a theta).

    Example:
        >>> import jaxmm, jax.numpy as jnp
        >>> F = jaxmm.functional
        >>> d = F.model("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> with jaxmm.x64():
        ...     c = F.conditional_modes(jnp.array([0.9667, 0.0152, 0.2309]), d)
        ...     print([round(float(v), 1) for v in c.beta], round(float(c.b[0]), 1))
        [251.4, 10.5] 2.3
    """
    theta = _check_theta(design, theta)
    y, w, X = resolve(design, y, w, X)
    lay = design.layout
    if beta is not None:
        beta = jnp.asarray(beta)
        if beta.shape != (lay.p,):
            raise ModelError(f"beta must have shape ({lay.p},), got {beta.shape}")
    est = estimates(theta, blocks_for(design, y, w, X), lay, beta)
    u = jnp.concatenate([est.u1.reshape(-1), est.u_rest])
    dof = design.blocks.n - (lay.p if design.reml else 0)
    sigma = jnp.sqrt(est.pwrss / dof)
    return Conditional(est.beta, u, lambda_u(theta, design, u), sigma, est)


def _check_scalar_sigma(sigma) -> jnp.ndarray:
    sigma = jnp.asarray(sigma)
    if sigma.shape != ():
        raise ModelError(f"sigma must be a scalar, got shape {sigma.shape}")
    return sigma


def loglik(beta, theta, sigma, design: MixedDesign, y=None, w=None, X=None) -> jnp.ndarray:
    """Marginal log-likelihood log p(y | beta, theta, sigma) (u integrated out; not profiled).

    Computed as -(n log(2 pi sigma^2) - sum log w + ldL2 + r2 / sigma^2) / 2 with
    r2 = pwrss + |RX'(beta - beta_hat)|^2, all from the blocked factorization.

    Example:
        >>> import jaxmm, jax.numpy as jnp
        >>> F = jaxmm.functional
        >>> d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"), reml=False)
        >>> with jaxmm.x64():
        ...     print(round(float(F.loglik(jnp.array([1527.5]), jnp.array([0.7525]), 49.51, d)), 2))
        -163.66
    """
    theta = _check_theta(design, theta)
    sigma = _check_scalar_sigma(sigma)
    y, w, X = resolve(design, y, w, X)
    est = estimates(theta, blocks_for(design, y, w, X), design.layout)
    d = est.RX.T @ (jnp.asarray(beta) - est.beta)
    r2 = est.pwrss + d @ d
    n = design.blocks.n
    return -0.5 * (n * jnp.log(2 * math.pi * sigma**2) - _logw(w, theta.dtype) + est.ldL2 + r2 / sigma**2)


def log_joint(beta, theta, sigma, u, design: MixedDesign, y=None, w=None, X=None) -> jnp.ndarray:
    """log p(y, u | beta, theta, sigma) = log N(y; X beta + Z Lambda u, sigma^2 W^-1)
    + log N(u; 0, sigma^2 I), u spherical (lme4's convention), flat in lme4's order.

    Integrating u out gives :func:`loglik`; use it for Laplace or MCMC over u.

    Example:
        >>> import jaxmm, jax.numpy as jnp
        >>> F = jaxmm.functional
        >>> d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> with jaxmm.x64():
        ...     print(round(float(F.log_joint(jnp.array([1527.5]), jnp.array([0.75]), 49.5,
        ...                                   jnp.zeros(d.n_u), d)), 2))
        -197.06
    """
    theta = _check_theta(design, theta)
    sigma = _check_scalar_sigma(sigma)
    y, w, X = resolve(design, y, w, X)
    u = jnp.asarray(u)
    if u.shape != (design.n_u,):
        raise ModelError(f"u must have shape ({design.n_u},), got {u.shape}")
    X = design.X if X is None else X
    resid = y - jnp.asarray(X) @ jnp.asarray(beta) - z_times(design, lambda_u(theta, design, u))
    wr2 = jnp.sum(resid**2) if w is None else jnp.sum(jnp.asarray(w) * resid**2)
    n, q = y.shape[0], design.n_u
    log2pis2 = jnp.log(2 * math.pi * sigma**2)
    return -0.5 * ((n + q) * log2pis2 - _logw(w, theta.dtype) + (wr2 + u @ u) / sigma**2)
