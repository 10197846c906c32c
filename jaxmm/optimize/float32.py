"""``dtype="float32"``: find theta in single precision (consumer GPUs), report in float64.

Single precision loses the criterion to cancellation when y and the columns of X have
large means (on star the uncentered float32 criterion was off by 175 units, centered by
0.5). With an intercept in X, subtracting each column's mean (and y's) is the unit
triangular change of variables [X y] -> [X y] T, T = I - e_icpt m' (m: the column means,
0 for the intercept): it leaves the REML and ML criteria unchanged exactly (det T = 1, and
y's shift is absorbed by the intercept). It is applied to the crossproduct blocks, so no
rows are needed (streamed fits too). Without an intercept centering would change the
model, and the float32 pass runs on the blocks as they are.

The float32 optimum then starts a float64 fit on the original blocks, which polishes it
in a few iterations; everything reported (criterion, estimates, checks) is float64.

Example:
    >>> import jaxmm
    >>> sleep = jaxmm.datasets.load("sleepstudy")
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleep, dtype="float32")
    >>> round(m.reml_criterion, 3)
    1743.628
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from .. import aligned
from ..core.devfun import DevFun
from ..core.layout import Blocks, Layout, transform_xy
from ..core.objective import objective
from ..precision import compute
from .lbfgs import minimize

__all__ = ["center_blocks", "float32_theta"]


def center_blocks(layout: Layout, blocks: Blocks, icpt: int) -> Blocks:
    """The blocks of the data with every X column but the intercept (column ``icpt``) and y
    centered, computed from the blocks (NumPy, float64; O(r p^2), not O(r^3))."""
    rz, p = layout.rz, layout.p
    A = aligned.copy(blocks.A, np.float64)  # aligned: no copy into the compiled programs
    n = float(blocks.n)
    m = A[rz + icpt, rz:] / n  # column means of [X y] (X'1 / n, as the intercept is 1)
    m[icpt] = 0.0
    T = np.eye(p + 1)
    T[icpt, :] -= m
    A[:, rz:] = A[:, rz:] @ T
    A[rz:, :] = T.T @ A[rz:, :]
    C1 = np.asarray(blocks.C1, np.float64)
    C1_c = np.matmul(C1, T, out=aligned.empty(C1.shape)) if C1.nbytes >= aligned.MIN_BYTES \
        else C1 @ T
    return transform_xy(blocks._replace(A=A), C1_c, T)


def _to32(a):
    a = np.asarray(a)
    if np.issubdtype(a.dtype, np.floating):
        return jnp.asarray(a, jnp.float32)
    return jnp.asarray(a, jnp.int32)


def float32_theta(devfun: DevFun, theta0: np.ndarray, icpt: int | None, *,
                  maxiter: int = 500) -> np.ndarray:
    """theta minimizing the criterion in float32 on centered blocks (the start where the
    float32 pass fails: a non-finite result)."""
    layout = devfun.layout
    blocks = jax.device_get(devfun.blocks)
    if icpt is not None:
        blocks = center_blocks(layout, blocks, icpt)
    with compute(), jax.enable_x64(False):
        b32 = jax.tree_util.tree_map(_to32, blocks)
        x = _minimize32(jnp.asarray(theta0, jnp.float32), b32, layout, devfun.reml, int(maxiter))
        theta = np.asarray(jax.device_get(x), np.float64)
    return theta if np.isfinite(theta).all() else np.asarray(theta0, np.float64)


@partial(jax.jit, static_argnames=("layout", "reml", "maxiter"))
def _minimize32(theta0, blocks: Blocks, layout: Layout, reml: bool, maxiter: int):
    sol = minimize(lambda t: objective(t, blocks, layout, reml), theta0, maxiter=maxiter,
                   gtol=1e-4)
    return sol.x
