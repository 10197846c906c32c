"""Dense BFGS with a backtracking line search, for the small warm-started problems of a
likelihood profile (a handful of parameters, a start near the optimum).

Each loop iteration evaluates the objective and its gradient exactly once (a trial step
that fails the Armijo test only shrinks the step for the next iteration), so the compiled
program holds one copy of the objective: it compiles several times faster than optax's
L-BFGS with a zoom line search, which traces the objective at several call sites. The
inverse-Hessian approximation can be passed in and is returned, so a sequence of nearby
problems (consecutive profile points) starts each one with the last one's curvature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp


class BFGSResult(NamedTuple):
    """Result of :func:`bfgs` (a pytree).

    Attributes:
        x, fun, grad: the minimizer found, the objective and gradient there.
        aux: what ``fun``'s value-and-gradient function returned beside them, at ``x``.
        hinv: the final inverse-Hessian approximation (to warm-start a nearby problem).
        n_eval: objective + gradient evaluations.
        status: 0 converged (gradient), 1 converged (no further decrease), 2 evaluation
            limit, 3 non-finite objective at the start.
    """

    x: jnp.ndarray
    fun: jnp.ndarray
    grad: jnp.ndarray
    aux: object
    hinv: jnp.ndarray
    n_eval: jnp.ndarray
    status: jnp.ndarray


def bfgs(
    fun: Callable[[jnp.ndarray], jnp.ndarray] | None,
    x0: jnp.ndarray,
    hinv0: jnp.ndarray | None = None,
    reset=None,
    *,
    max_eval: int = 400,
    gtol: float = 1e-9,
    gtol_rel: float = 1e-11,
    ftol: float = 1e-15,
    value_and_grad: Callable | None = None,
    aux0=None,
) -> BFGSResult:
    """Minimize ``fun`` from ``x0`` (jit/vmap friendly; one evaluation per loop iteration).

    Stops when max|grad| <= max(gtol, gtol_rel |f|), or after three accepted steps in a row
    that each decrease f by at most ``ftol (1 + |f|)``, or when the step has shrunk to
    nothing. Instead of ``fun`` one may give ``value_and_grad(x) -> (f, g, aux)`` (with
    ``aux0`` an example of aux): aux at the solution is returned, e.g. a derivative taken
    in the same pass. ``hinv0`` (or, where ``reset`` is true, a traced flag) is replaced by a
    scaled identity whose first step moves x by at most 0.1.

    Example:
        >>> import jax.numpy as jnp
        >>> r = bfgs(lambda x: jnp.sum((x - 3.0) ** 2) + x[0] * x[1], jnp.zeros(2))
        >>> [round(float(v), 6) for v in r.x], int(r.status)
        ([2.0, 2.0], 0)
    """
    if value_and_grad is None:
        _vg = jax.value_and_grad(fun)
        aux0 = jnp.zeros(())

        def value_and_grad(x):
            f, g = _vg(x)
            return f, g, jnp.zeros((), f.dtype)
    n = x0.shape[0]
    eye = jnp.eye(n, dtype=x0.dtype)
    if hinv0 is None:
        hinv0, reset = eye, True
    reset = jnp.asarray(False if reset is None else reset)

    def gmax_ok(f, g):
        return jnp.max(jnp.abs(g)) <= jnp.maximum(gtol, gtol_rel * jnp.abs(f))

    def capped_descent(g):
        return -g * jnp.minimum(1.0, 0.1 / jnp.maximum(jnp.max(jnp.abs(g)), 1e-300))

    # The first iteration evaluates x0 itself (alpha = 0, f = inf): one call site only.
    def body(c):
        x, f, g, aux, H, d, alpha, stall, n_eval, done = c
        xt = x + alpha * d
        ft, gt, auxt = value_and_grad(xt)
        slope = jnp.dot(g, d)
        ok = jnp.isfinite(ft) & (ft <= f + 1e-4 * alpha * slope)
        # accepted: BFGS update of the inverse Hessian (skipped unless s'y > 0)
        s, y = xt - x, gt - g
        sy = jnp.dot(s, y)
        rho = jnp.where(sy > 1e-12 * jnp.sqrt(jnp.dot(s, s) * jnp.dot(y, y)), 1.0 / sy, 0.0)
        V = eye - rho * jnp.outer(s, y)
        Hn = jnp.where(rho > 0, V @ H @ V.T + rho * jnp.outer(s, s), H)
        scale = jnp.minimum(1.0, 0.1 / jnp.maximum(jnp.max(jnp.abs(gt)), 1e-300))
        Hn = jnp.where((n_eval == 0) & reset, eye * scale, Hn)
        dn = -Hn @ gt
        dn = jnp.where(jnp.dot(dn, gt) < 0, dn, capped_descent(gt))  # keep a descent direction
        small = (f - ft) <= ftol * (1.0 + jnp.abs(ft))
        # rejected: shrink the step (quadratic interpolation, within [0.1, 0.5])
        denom = 2.0 * (ft - f - alpha * slope)
        a_q = jnp.where(denom > 0, -slope * alpha**2 / denom, 0.5 * alpha)
        a_new = jnp.clip(jnp.nan_to_num(a_q, nan=0.5 * alpha), 0.1 * alpha, 0.5 * alpha)
        x = jnp.where(ok, xt, x)
        f = jnp.where(ok, ft, f)
        g = jnp.where(ok, gt, g)
        aux = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), auxt, aux)
        H = jnp.where(ok, Hn, H)
        d = jnp.where(ok, dn, d)
        stall = jnp.where(ok, jnp.where(small, stall + 1, 0), stall)
        alpha = jnp.where(ok, 1.0, a_new)
        tiny = alpha * jnp.max(jnp.abs(d)) <= 1e-15 * (1.0 + jnp.max(jnp.abs(x)))
        done = gmax_ok(f, g) | (stall >= 3) | tiny | ~jnp.isfinite(f)
        return x, f, g, aux, H, d, alpha, stall, n_eval + 1, done

    def cond(c):
        return (~c[-1]) & (c[-2] < max_eval)

    H0 = hinv0
    zero = jnp.zeros((), x0.dtype)
    aux0 = jax.tree_util.tree_map(lambda a: jnp.zeros_like(jnp.asarray(a, x0.dtype)), aux0)
    c = (x0, zero + jnp.inf, jnp.zeros_like(x0), aux0, H0, jnp.zeros_like(x0), zero,
         jnp.asarray(0), jnp.asarray(0), jnp.asarray(False))
    x, f, g, aux, H, _, _, _, n_eval, done = jax.lax.while_loop(cond, body, c)
    status = jnp.where(
        ~jnp.isfinite(f), 3, jnp.where(gmax_ok(f, g), 0, jnp.where(done, 1, 2))
    )
    return BFGSResult(x=x, fun=f, grad=g, aux=aux, hinv=H, n_eval=n_eval, status=status)
