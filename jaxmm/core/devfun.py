"""lme4's ``devFunOnly``: the profiled criterion as a standalone, jit-compiled function.

Example:
    >>> import jaxmm, jax.numpy as jnp
    >>> d = jaxmm.lformula("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
    >>> f = jaxmm.mk_devfun(d, reml=True)
    >>> round(f([0.8483]), 3)
    319.654
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..precision import compute, x64
from .layout import Blocks, Layout
from .objective import hessian, objective, objective_jit, value_and_grad


class DevFun:
    """The REML criterion or ML deviance of one model as a function of theta.

    Calling it evaluates in float64 (scoped). ``objective``/``blocks``/``layout`` expose the
    pure function and its data for use inside your own jitted, differentiated or vmapped
    code: ``jaxmm.core.objective(theta, devfun.blocks, devfun.layout, devfun.reml)``.
    ``blocks`` are float64 JAX arrays, made from host (NumPy) blocks on first access: a fit
    passes the host blocks straight to its compiled program.

    Example:
        >>> f = m.devfun                    # a fit's DevFun (or jaxmm.mk_devfun(design))
        >>> round(f(m.theta_vector), 3)     # the criterion at the estimate: m.objective
        1743.628
        >>> value, grad = f.value_and_grad(m.theta_vector)
        >>> bool(abs(grad).max() < 1e-2)    # zero gradient at the optimum
        True
    """

    __slots__ = ("_device", "_host", "icpt", "layout", "reml")

    def __init__(self, layout: Layout, blocks: Blocks, reml: bool, icpt: int | None = None) -> None:
        self.layout, self.reml, self.icpt = layout, reml, icpt
        self._host, self._device = blocks, None

    def __repr__(self) -> str:
        return f"DevFun(layout={self.layout!r}, reml={self.reml!r})"

    @property
    def blocks(self) -> Blocks:
        """The crossproduct blocks as float64 JAX arrays (converted once, on first use)."""
        if self._device is None:
            # device_put, not jnp.asarray: the latter compiles a conversion program per
            # array (0.3 s of a cold start).
            with x64(), jax.ensure_compile_time_eval():  # concrete even if first used in a trace
                self._device = jax.tree_util.tree_map(
                    lambda x: jax.device_put(np.asarray(x)), self._host)
        return self._device

    @property
    def host_blocks(self) -> Blocks:
        """The blocks as given (NumPy from :meth:`from_numpy`): a jitted call converts them
        without a separate dispatch per array."""
        return self._host

    @staticmethod
    def from_numpy(layout: Layout, blocks: Blocks, reml: bool, icpt: int | None = None) -> "DevFun":
        """A DevFun over host (NumPy) blocks; ``icpt``: the intercept's column of X, if
        any (a fit then optimizes on centered [X y] blocks, see
        :func:`jaxmm.optimize.lmm.run_fit`)."""
        return DevFun(layout=layout, blocks=blocks, reml=reml, icpt=icpt)

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
