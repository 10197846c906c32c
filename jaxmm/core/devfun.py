"""lme4's ``devFunOnly``: the profiled criterion as a standalone, jit-compiled function.

Example:
    >>> import jaxmm, jax.numpy as jnp
    >>> d = jaxmm.lformula("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
    >>> f = jaxmm.mk_devfun(d, reml=True)
    >>> round(f([0.8483]), 3)
    319.654
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..precision import compute, x64
from .layout import Blocks, Layout
from .objective import hessian, objective, objective_jit, value_and_grad


@dataclass(frozen=True)
class DevFun:
    """The REML criterion or ML deviance of one model as a function of theta.

    Calling it evaluates in float64 (scoped). ``objective``/``blocks``/``layout`` expose the
    pure function and its data for use inside your own jitted, differentiated or vmapped
    code: ``jaxmm.core.objective(theta, devfun.blocks, devfun.layout, devfun.reml)``.

    Example:
        >>> f = m.devfun                    # a fit's DevFun (or jaxmm.mk_devfun(design))
        >>> round(f(m.theta_vector), 3)     # the criterion at the estimate: m.objective
        1743.628
        >>> value, grad = f.value_and_grad(m.theta_vector)
        >>> bool(abs(grad).max() < 1e-2)    # zero gradient at the optimum
        True
    """

    layout: Layout
    blocks: Blocks
    reml: bool

    @staticmethod
    def from_numpy(layout: Layout, blocks: Blocks, reml: bool) -> "DevFun":
        # device_put, not jnp.asarray: the latter compiles a conversion program per array
        # (0.3 s of a cold start).
        with x64():
            jblocks = jax.tree_util.tree_map(lambda x: jax.device_put(np.asarray(x)), blocks)
        return DevFun(layout=layout, blocks=jblocks, reml=reml)

    def __call__(self, theta) -> float:
        with compute():
            return float(objective_jit(jnp.asarray(theta, jnp.float64), self.blocks, self.layout, self.reml))

    def value_and_grad(self, theta) -> tuple[float, np.ndarray]:
        """Objective and its exact gradient (autodiff)."""
        with compute():
            f, g = value_and_grad(jnp.asarray(theta, jnp.float64), self.blocks, self.layout, self.reml)
            return float(f), np.asarray(g)

    def hessian(self, theta) -> np.ndarray:
        """Exact Hessian of the objective (forward-over-reverse autodiff)."""
        with compute():
            return np.asarray(hessian(jnp.asarray(theta, jnp.float64), self.blocks, self.layout, self.reml))

    def pure(self):
        """The pure JAX function ``theta -> objective`` closed over this model's data."""
        return lambda theta: objective(theta, self.blocks, self.layout, self.reml)
