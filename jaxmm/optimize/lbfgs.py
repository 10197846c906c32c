"""Unconstrained L-BFGS (optax, zoom line search) as one jit-compiled, vmappable loop.

The covariance parameters are optimized *without* bounds: the profiled criterion is even in
the sign of each column of each relative factor T, so a projected method stalls where the
gradient vanishes on the bound T_jj = 0 (see DESIGN.md), while an unconstrained one passes
through and reaches singular optima as ordinary interior points of the symmetric objective.
Signs are normalized afterwards by the caller.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from .._lazy import lazy_module

# imported when a program is traced (a stored program runs without them: ~45 ms of a
# cold start)
optax = lazy_module("optax")
otu = lazy_module("optax.tree_utils")


class Solution(NamedTuple):
    """Result of :func:`minimize` (a pytree: vmap gives one per lane).

    Attributes:
        x: the minimizer found.
        fun: objective at ``x``.
        grad: gradient at ``x``.
        n_iter: iterations taken.
        n_eval: objective + gradient evaluations (line-search steps included).
        status: 0 converged (gradient), 1 converged (no further decrease), 2 iteration limit,
            3 non-finite objective.
    """

    x: jnp.ndarray
    fun: jnp.ndarray
    grad: jnp.ndarray
    n_iter: jnp.ndarray
    n_eval: jnp.ndarray
    status: jnp.ndarray


STATUS_MESSAGES = {
    0: "converged: gradient below tolerance",
    1: "converged: no further decrease of the objective",
    2: "iteration limit reached before convergence",
    3: "non-finite objective",
}


def minimize(
    fun: Callable[[jnp.ndarray], jnp.ndarray],
    x0: jnp.ndarray,
    *,
    maxiter: int = 1000,
    gtol: float = 1e-7,
    gtol_rel: float = 1e-7,
    ftol: float = 1e-15,
    memory_size: int = 10,
) -> Solution:
    """Minimize ``fun`` from ``x0`` with L-BFGS inside a ``lax.while_loop`` (jit/vmap friendly).

    Stops when max|grad| <= max(gtol, gtol_rel * |f|) (the criterion's scale grows with the
    number of observations: InstEval's is 2e5), or when two successive iterations decrease f
    by at most ``ftol * (1 + |f|)``.

    Example:
        >>> import jax.numpy as jnp
        >>> sol = minimize(lambda x: jnp.sum((x - 3.0) ** 2), jnp.zeros(2))
        >>> [round(float(v), 6) for v in sol.x], int(sol.status)
        ([3.0, 3.0], 0)
    """
    opt = optax.lbfgs(
        memory_size=memory_size,
        linesearch=optax.scale_by_zoom_linesearch(max_linesearch_steps=40, initial_guess_strategy="one"),
    )
    value_and_grad = optax.value_and_grad_from_state(fun)

    def body(carry):
        x, state, stall, n_eval = carry
        f, g = value_and_grad(x, state=state)
        updates, state = opt.update(g, state, x, value=f, grad=g, value_fn=fun)
        x = optax.apply_updates(x, updates)
        f_new = otu.tree_get(state, "value")
        small = (f - f_new) <= ftol * (1.0 + jnp.abs(f_new))
        stall = jnp.where(small, stall + 1, 0)
        steps = otu.tree_get(state, "num_linesearch_steps")
        return x, state, stall, n_eval + steps

    def cond(carry):
        x, state, stall, n_eval = carry
        it = otu.tree_get(state, "count")
        g = otu.tree_get(state, "grad")
        f = otu.tree_get(state, "value")
        gmax = jnp.max(jnp.abs(g))
        going = (gmax > jnp.maximum(gtol, gtol_rel * jnp.abs(f))) & (stall < 2)
        return (it == 0) | (going & (it < maxiter) & jnp.isfinite(f))

    state0 = opt.init(x0)
    carry = (x0, state0, jnp.asarray(0), jnp.asarray(1))
    x, state, stall, n_eval = jax.lax.while_loop(cond, body, carry)
    f = otu.tree_get(state, "value")
    g = otu.tree_get(state, "grad")
    it = otu.tree_get(state, "count")
    gmax = jnp.max(jnp.abs(g))
    small = gmax <= jnp.maximum(gtol, gtol_rel * jnp.abs(f))
    status = jnp.where(~jnp.isfinite(f), 3, jnp.where(small, 0, jnp.where(stall >= 2, 1, 2)))
    return Solution(x=x, fun=f, grad=g, n_iter=it, n_eval=n_eval, status=status)
