"""glmer's host-driven steps: one compiled program for the deviance and its exact gradient
at one point or a stack of points, and around it the host-side objective (PIRLS warm-started
at the previous evaluation's modes), scipy's L-BFGS, the finite-difference Hessian and
Newton's steps that :func:`jaxmm.optimize.glmm.run_glmm_fit` strings together.

Example:
    >>> import jaxmm
    >>> from jaxmm.glmm_pipeline import glformula, glm_start
    >>> gd = glformula("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                jaxmm.datasets.load("cbpp"), "binomial")
    >>> vg = value_and_grad_fn(gd.layout, 1, False)
    >>> x = np.concatenate([[1.0], glm_start(gd)])
    >>> with jaxmm.x64():
    ...     dev, grad, _ = vg(x, gd.data, np.zeros(gd.layout.nu))
    >>> bool(np.isfinite(dev)), grad.shape
    (True, (5,))
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from ..core.laplace import deviance
from ..core.pirls import (
    GlmmLayout,
    PirlsResult,
    dense_factor,
    factor,
    linear_predictor,
    z_lambda,
)

def home_device() -> jax.Device:
    """The device computations go to: the configured default device, else the first one."""
    d = jax.config.jax_default_device
    return d if isinstance(d, jax.Device) else jax.devices()[0]


#: A Newton step predicted to lower the deviance by less than this keeps the Hessian.
REUSE_HESSIAN = 1e-4
#: L-BFGS hands over to Newton once an iteration lowers the deviance by less than this
#: (relative): from there Newton converges in one or two steps, where L-BFGS crawled
#: (VerbAgg: 35 instead of 55 compiled calls; 1e-5 was too loose for its Newton steps).
LBFGS_FTOL = 1e-6
#: Data up to this size are passed to the compiled calls as NumPy arrays.
SMALL_DATA_BYTES = 1 << 20

@lru_cache(maxsize=64)
def _packed_vg_fn(lay: GlmmLayout, nagq: int, beta_in_pirls: bool):
    """Jitted ``(points, count, data, v0) -> (heads, PirlsResult at points[0])`` (cached per
    layout): ``heads[i] = [deviance, *gradient, converged]`` at ``points[i]`` for
    ``i < count`` (zeros after), evaluated one after another with PIRLS started at ``v0``.

    One program serves the optimizer's steps (``count = 1``) and the finite-difference
    Hessian's gradients (``count`` up to the number of parameters) with one dispatch and one
    transfer each, and one compile: a second program for the Hessian cost a cold cbpp fit
    1 s more.
    """
    f = deviance(lay, nagq, beta_in_pirls)

    def one(params, data, v0):
        (val, aux), g = jax.value_and_grad(lambda p: f(p, data, v0), has_aux=True)(params)
        return jnp.concatenate([val[None], g, aux.converged.astype(g.dtype)[None]]), aux

    def stacked(pts, count, data, v0):
        zeros = (jnp.zeros(pts.shape[1] + 2, pts.dtype), PirlsResult.zeros(v0))

        def body(_, ip):
            i, p = ip
            return None, jax.lax.cond(i < count, lambda q: one(q, data, v0), lambda q: zeros, p)

        _, (heads, aux) = jax.lax.scan(body, None, (jnp.arange(pts.shape[0]), pts))
        return heads, jax.tree_util.tree_map(lambda a: a[0], aux)

    return jax.jit(stacked)


def _stack(x: np.ndarray) -> np.ndarray:
    """x as the first of ``x.size`` points (the packed program's fixed shape)."""
    pts = np.zeros((x.size, x.size))
    pts[0] = x
    return pts


@lru_cache(maxsize=64)
def value_and_grad_fn(lay: GlmmLayout, nagq: int, beta_in_pirls: bool):
    """``(params, data, v0) -> (deviance, gradient, PirlsResult)`` over the compiled
    :func:`_packed_vg_fn` (the program a fit uses)."""
    packed = _packed_vg_fn(lay, nagq, beta_in_pirls)

    def vg(params, data, v0):
        heads, aux = packed(_stack(np.asarray(params, np.float64)), np.int64(1), data, v0)
        head = np.asarray(heads)[0]
        return head[0], head[1:-1], aux

    return vg


@lru_cache(maxsize=64)
def finalize_fn(lay: GlmmLayout):
    """Jitted factors at the estimates: random effects only, and with beta's columns."""

    def fin(theta, beta, u, data):
        zl = z_lambda(theta, data, lay)
        eta = linear_predictor(u, beta, zl, data, lay)
        w = lay.family.fisher_weights(eta, data.resp)
        return (dense_factor(factor(w, zl, data, lay, False), data, lay),
                dense_factor(factor(w, zl, data, lay, True), data, lay))

    return jax.jit(fin)


class _Objective:
    """Host wrapper: float64 value and gradient, PIRLS warm-started at the last modes; the
    last point's result is cached (re-evaluating it costs nothing)."""

    def __init__(self, packed, data, v0):
        # the modes committed to the device from the start, as every later call gets them
        # (the previous call's output): a NumPy first call compiled the program twice
        self.packed, self.data, self.v = packed, data, jax.device_put(v0, home_device())
        self.n_eval = 0
        self.pirls: PirlsResult | None = None
        self._last = None

    def __call__(self, x):
        x = np.asarray(x, float)
        if self._last is not None and np.array_equal(self._last[0], x):
            self.v, self.pirls = self._last[3], self._last[4]
            return self._last[1], self._last[2].copy()
        heads, aux = self.packed(_stack(x), np.int64(1), self.data, self.v)  # NumPy: one call
        head = np.asarray(heads)[0]  # one transfer; indexing the device array first would dispatch a slice
        val, g, conv = float(head[0]), head[1:-1].copy(), head[-1] != 0
        self.n_eval += 1
        if np.isfinite(val) and bool(conv):
            self.v = aux.v
        self.pirls = aux
        if not np.isfinite(val) or not np.all(np.isfinite(g)):
            val, g = np.inf, np.zeros_like(g)
        self._last = (x.copy(), val, g, self.v, aux)
        return val, g.copy()


def _lbfgs(obj: _Objective, x0, maxiter: int, gtol: float, ftol: float = 1e-15):
    from scipy.optimize import minimize as sp_minimize

    return sp_minimize(obj, np.asarray(x0, float), jac=True, method="L-BFGS-B",
                       options={"maxiter": maxiter, "gtol": gtol, "ftol": ftol, "maxcor": 10,
                                "maxls": 40})


def _fd_hessian_host(obj: _Objective, x, free=None):
    """Forward differences of the exact gradient (free coordinates only; others 0).

    The perturbed gradients come from one compiled call; where one of them is not finite or
    its PIRLS did not converge, they are taken one at a time through ``obj`` instead (whose
    rules for those cases apply)."""
    h = 1e-5 * np.maximum(np.abs(x), 0.1)
    f0, g0 = obj(x)
    state = obj._last
    idx = np.arange(x.size) if free is None else np.flatnonzero(free)
    H = np.zeros((x.size, x.size))
    rows = None
    if idx.size:
        pts = np.zeros((x.size, x.size))
        pts[: idx.size] = x[None, :] + np.diag(h)[idx]
        heads = np.asarray(obj.packed(pts, np.int64(idx.size), obj.data, obj.v)[0])[: idx.size]
        obj.n_eval += idx.size
        if np.all(np.isfinite(heads)) and np.all(heads[:, -1] != 0):
            rows = heads[:, 1:-1]
    if rows is None:
        rows = [obj(x + h[i] * np.eye(x.size)[i])[1] for i in idx]
    for k, i in enumerate(idx):
        H[i] = (rows[k] - g0) / h[i]
    obj._last = state  # back at x (cached: modes and PIRLS result at x)
    obj.v, obj.pirls = state[3], state[4]
    H = 0.5 * (H + H.T)
    if free is not None:
        H = np.where(np.outer(free, free), H, 0.0)
    return f0, g0, H


def _newton_polish(obj: _Objective, x, free, max_steps: int = 4):
    """Newton steps on the free coordinates with the finite-difference Hessian, from a point
    L-BFGS reached with a loose tolerance. Returns (x, f, g, H, ok): H at the returned x;
    ok False when H was not positive definite or a step did not decrease the deviance."""
    f, g, H = _fd_hessian_host(obj, x, free)
    for _ in range(max_steps):
        Hf, gf = H[np.ix_(free, free)], g[free]
        try:
            step = -np.linalg.solve(np.linalg.cholesky(Hf).T, np.linalg.solve(
                np.linalg.cholesky(Hf), gf))
        except np.linalg.LinAlgError:
            return x, f, g, H, False
        dec = float(-gf @ step)
        if dec <= 1e-10 * max(1.0, abs(f)):
            return x, f, g, H, True
        xn = x.copy()
        xn[free] += step
        fn = obj(xn)[0]
        if not fn <= f:
            obj(x)
            return x, f, g, H, dec <= 1e-7 * max(1.0, abs(f))
        x = xn
        if dec <= REUSE_HESSIAN:  # H changes by O(|step|): keep it, take the new gradient
            f, g = obj(x)
            return x, f, g, H, True
        f, g, H = _fd_hessian_host(obj, x, free)
    return x, f, g, H, True
