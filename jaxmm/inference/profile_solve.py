"""One point of a likelihood profile: the ML deviance minimized over all other parameters
with one parameter held at a value (pure JAX, one jit-compiled program per model shape).

As lme4's ``profile.merMod``, profiles are of the ML deviance (a REML fit is refitted by
ML first). Variance parameters use lme4's ``devfun2``: the deviance at theta *and* sigma,

    dev(theta, sigma) = ldL2 + pwrss / sigma^2 + n log(2 pi sigma^2),

with beta profiled out; the fixed sd/cor/sigma constraint is built into a free vector by
:func:`jaxmm.inference.profile_params.constrained`. A fixed effect beta_j = b is profiled
as lme4 does, by moving x_j b into an offset and dropping column j, here without changing
shapes: the response's crossproducts are shifted (they are linear in y) and column j is
replaced by a unit column orthogonal to everything, which leaves ldL2 and pwrss of the
reduced model unchanged; sigma is then profiled (sigma^2 = pwrss / n).

The parameter index ``k`` is traced (``lax.switch`` over the parameters' maps), so a model
compiles one program for all its parameters. The derivative of the profiled deviance
with respect to the held value comes free at the inner optimum (envelope theorem).
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..core.blocked import partial_factor
from ..core.layout import Blocks, Layout, transform_xy
from ..core.logchol import chol_t
from ..core.solve import estimates
from ..optimize.bfgs import bfgs
from ..optimize.lmm import diag_mask
from .profile_params import KINDS, ParamSpec, constrained, spec_table

#: Diagonals of T below this are moved to it before an inner fit (see solve_point).
KICK = 1e-3


def shift_fixed(blocks: Blocks, layout: Layout, e: jnp.ndarray, b) -> Blocks:
    """Crossproducts of the model with response y - b X e and X's column e (one-hot, or all
    zero for no change) replaced by a unit column orthogonal to everything else."""
    p, rz = layout.p, layout.rz
    C1x, C1y = blocks.C1[..., :p], blocks.C1[..., p]
    xj = jnp.einsum("lck,k->lc", C1x, e)
    C1 = jnp.concatenate([C1x * (1.0 - e), (C1y - b * xj)[..., None]], axis=-1)
    # the same as C1 @ T: X columns scaled by (1 - e), y column minus b X e
    T = jnp.diag(jnp.concatenate([1.0 - e, jnp.ones(1, e.dtype)]))
    T = T.at[:p, p].set(-b * e)
    A = blocks.A
    u = jnp.concatenate([jnp.zeros(rz, A.dtype), e, jnp.zeros(1, A.dtype)])
    Au = A @ u
    ycol = A[:, -1] - b * Au
    ycol = ycol.at[-1].set(A[-1, -1] - 2.0 * b * Au[-1] + b * b * jnp.dot(u, Au))
    A = A.at[:, -1].set(ycol).at[-1, :].set(ycol)
    keep = 1.0 - u
    A = keep[:, None] * A * keep[None, :] + jnp.diag(u)
    return transform_xy(blocks._replace(A=A), C1, T)


def deviance_at(theta, sigma2, profile_sigma, blocks: Blocks, layout: Layout):
    """ML deviance at theta and sigma^2 (or at the profiled sigma^2 = pwrss / n).

    Example:
        >>> import jax.numpy as jnp
        >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"), reml=False)
        >>> d = m.devfun
        >>> with jaxmm.x64():
        ...     f = deviance_at(jnp.asarray(m.theta_vector), 0.0, True, d.blocks, d.layout)
        >>> bool(abs(float(f) - m.deviance) < 1e-8)
        True
    """
    part = partial_factor(theta, blocks, layout)
    L = chol_t(part.St)
    d = jnp.diagonal(L)
    ldL2 = part.logdet1 + jnp.sum(jnp.log(d[: layout.rz] ** 2))
    pwrss = d[-1] ** 2
    n = blocks.n
    s2 = jnp.where(profile_sigma, pwrss / n, sigma2)
    return ldL2 + pwrss / s2 + n * jnp.log(2.0 * math.pi * s2)


def _mapped(z, v, k, specs: tuple[ParamSpec, ...], layout: Layout):
    """(theta, sigma^2, profile_sigma, e, b) for parameter k held at v; k = len(specs) holds
    nothing (the plain ML deviance of theta = z[:m]: the ML fit itself)."""
    m, p = layout.n_theta, layout.p
    tab = spec_table(specs, m)
    ri, mi, rj, mj = (jnp.asarray(a)[k] for a in (tab.ri, tab.mi, tab.rj, tab.mj))
    e_j = jax.nn.one_hot(jnp.asarray(tab.j)[k], p, dtype=z.dtype)

    def branch(kind):
        def f(z, v):
            theta, s2, prof = constrained(z, v, kind, ri, mi, rj, mj, m)
            one = jnp.ones((), z.dtype)
            if kind == "beta":
                return theta, s2, one, e_j, v
            return theta, s2, one * prof, jnp.zeros(p, z.dtype), 0.0 * one
        return f

    return jax.lax.switch(jnp.asarray(tab.kind)[k], [branch(kd) for kd in KINDS], z, v)


def held_deviance(z, v, k, blocks: Blocks, layout: Layout, specs: tuple[ParamSpec, ...]):
    """The ML deviance with parameter ``k`` held at ``v``, as a function of the free ``z``."""
    theta, s2, prof, e, b = _mapped(z, v, k, specs, layout)
    return deviance_at(theta, s2, prof > 0, shift_fixed(blocks, layout, e, b), layout)


class Point(NamedTuple):
    """The inner optimum with one parameter held (a pytree)."""

    dev: jnp.ndarray  # profiled ML deviance
    z: jnp.ndarray  # the free parameters there
    ddev: jnp.ndarray  # d dev / d v (envelope theorem)
    hinv: jnp.ndarray  # BFGS inverse-Hessian approximation (warm-starts the next point)
    n_eval: jnp.ndarray
    status: jnp.ndarray


def _solve_point(z0, hinv0, reset, v, k, blocks: Blocks, layout: Layout,
                specs: tuple[ParamSpec, ...], max_eval: int = 400) -> Point:
    """Minimize the deviance over the free parameters with parameter ``k`` held at ``v``,
    warm-started at ``z0`` with inverse Hessian ``hinv0`` (unless ``reset``);
    ``k = len(specs)``: nothing held, the ML fit."""
    fun = partial(held_deviance, k=k, blocks=blocks, layout=layout, specs=specs)
    # The deviance is even in each column of T: its gradient vanishes where a diagonal is
    # 0, so a start there never leaves (DESIGN.md). Start tiny diagonals a little off it.
    diag = jnp.asarray(np.append(diag_mask(layout), False))
    z0 = jnp.where(diag & (jnp.abs(z0) < KICK), KICK, z0)
    vg = jax.value_and_grad(fun, argnums=(0, 1))

    def value_and_grad(z):  # d/dz for the optimizer and d/dv (the envelope derivative) at once
        f, (gz, gv) = vg(z, v)
        return f, gz, gv

    sol = bfgs(None, z0, hinv0, reset, max_eval=max_eval, value_and_grad=value_and_grad, aux0=v)
    return Point(dev=sol.fun, z=sol.x, ddev=sol.aux, hinv=sol.hinv, n_eval=sol.n_eval,
                 status=sol.status)


solve_point = partial(jax.jit, static_argnames=("layout", "specs", "max_eval"))(_solve_point)


@partial(jax.jit, static_argnames=("layout", "specs", "max_eval"))
def solve_point_packed(z0, hinv0, reset, v, k, blocks: Blocks, layout: Layout,
                       specs: tuple[ParamSpec, ...], max_eval: int = 400) -> jnp.ndarray:
    """:func:`solve_point` returning one flat array (one transfer to the host):
    [dev, ddev, status, n_eval, z, hinv.ravel()]; see :func:`unpack_point`."""
    pt = _solve_point(z0, hinv0, reset, v, k, blocks, layout, specs, max_eval)
    head = jnp.stack([pt.dev, pt.ddev, pt.status.astype(pt.dev.dtype), pt.n_eval.astype(pt.dev.dtype)])
    return jnp.concatenate([head, pt.z, pt.hinv.ravel()])


def unpack_point(flat: np.ndarray) -> Point:
    """The :class:`Point` (NumPy) from :func:`solve_point_packed`'s output."""
    n = round((-1 + math.sqrt(1 + 4 * (flat.size - 4))) / 2)
    return Point(dev=flat[0], z=flat[4:4 + n], ddev=flat[1], hinv=flat[4 + n:].reshape(n, n),
                 n_eval=int(flat[3]), status=int(flat[2]))


@partial(jax.jit, static_argnames=("layout", "specs"))
def point_parameters(z, v, k, blocks: Blocks, layout: Layout, specs: tuple[ParamSpec, ...]):
    """[theta, sigma, beta] (one flat array) at a profile point (beta_j = v when a fixed
    effect is held)."""
    theta, s2, prof, e, b = _mapped(z, v, k, specs, layout)
    est = estimates(theta, shift_fixed(blocks, layout, e, b), layout)
    sigma = jnp.sqrt(jnp.where(prof > 0, est.pwrss / blocks.n, s2))
    beta = jnp.where(e > 0, b, est.beta)
    return jnp.concatenate([theta, sigma[None], beta])
