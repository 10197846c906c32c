"""Dense BFGS with a strong-Wolfe line search, one evaluation per loop step: the fitting
program's optimizer (``jaxmm.optimize.lmm.fit_program``) and the likelihood profiles'.

Each step of the ``lax.while_loop`` evaluates the objective and its gradient once, at the
line search's current trial point; the line search (Nocedal & Wright, algorithms 3.5-3.6:
extrapolate until the minimum along the direction is bracketed, then zoom in by safeguarded
cubic interpolation) is a state carried from step to step, not a nested loop. So a compiled program holds one copy of the
objective's gradient; optax's L-BFGS with its zoom line search traces it at several call
sites. The strong Wolfe conditions keep every update's curvature s'y positive. Dense BFGS
suits the parameter counts of mixed models (a few to a few dozen); ``memory`` gives L-BFGS
(:func:`lbfgs_direction`, shared with the batched lanes' loop), which needed fewer
evaluations on star (23 against 29).

The inverse-Hessian approximation can be passed in and is returned, so a sequence of nearby
problems (consecutive profile points) starts each one with the last one's curvature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

#: Sufficient decrease (Armijo) and curvature constants of the strong Wolfe conditions.
C1, C2 = 1e-4, 0.9
#: Trial points of one line search before it settles for its best point so far.
MAX_LINESEARCH = 30
#: Trial points after which a search settles for its best point so far, if it has one that
#: decreased f (rounding noise in the slopes near an optimum can keep the curvature
#: condition from ever holding).
SETTLE_AFTER = 6
#: Growth of the trial step while the minimum along the direction is not yet bracketed.
EXTRAPOLATE = 8.0


class BFGSResult(NamedTuple):
    """Result of :func:`bfgs` (a pytree).

    Attributes:
        x, fun, grad: the minimizer found, the objective and gradient there.
        aux: what ``fun``'s value-and-gradient function returned beside them, at ``x``.
        hinv: the final inverse-Hessian approximation (to warm-start a nearby problem;
            dense BFGS only).
        n_eval: objective + gradient evaluations.
        n_iter: accepted steps.
        status: 0 converged (gradient), 1 converged (no further decrease), 2 evaluation or
            iteration limit, 3 non-finite objective at the start.
    """

    x: jnp.ndarray
    fun: jnp.ndarray
    grad: jnp.ndarray
    aux: object
    hinv: jnp.ndarray
    n_eval: jnp.ndarray
    n_iter: jnp.ndarray
    status: jnp.ndarray


class _Search(NamedTuple):
    """The line search's state along the direction ``d`` from the accepted point: the
    trial step, the bracket's ends (``lo``: the best step so far, Armijo holds there;
    ``hi``: its other end once ``bracketed``), each with objective and slope, and the
    point, gradient and aux at ``lo`` (a search that runs out of steps settles there)."""

    t: jnp.ndarray
    lo: jnp.ndarray
    f_lo: jnp.ndarray
    dp_lo: jnp.ndarray
    hi: jnp.ndarray
    f_hi: jnp.ndarray
    dp_hi: jnp.ndarray
    bracketed: jnp.ndarray
    steps: jnp.ndarray
    g_lo: jnp.ndarray
    aux_lo: object


def _cubic_step(a, fa, da, b, fb, db):
    """Minimizer of the cubic through (a, fa, da) and (b, fb, db), kept at least a tenth of
    the bracket from either end; bisection where the cubic has none or fb is not finite."""
    d1 = da + db - 3.0 * (fa - fb) / (a - b)
    disc = d1 * d1 - da * db
    d2 = jnp.sign(b - a) * jnp.sqrt(jnp.maximum(disc, 0.0))
    c = b - (b - a) * (db + d2 - d1) / (db - da + 2.0 * d2)
    lo, hi = jnp.minimum(a, b), jnp.maximum(a, b)
    w = hi - lo
    ok = jnp.isfinite(c) & (disc >= 0) & jnp.isfinite(fb) & jnp.isfinite(db)
    # a non-finite end: step back towards the good one, fast (a huge first step, say)
    fallback = jnp.where(jnp.isfinite(fb), 0.5 * (a + b), a + 0.2 * (b - a))
    return jnp.where(ok, jnp.clip(c, lo + 0.1 * w, hi - 0.1 * w), fallback)


def _update(H, s, y, rho):
    """The BFGS update of the inverse Hessian H with the pair (s, y), rho = 1 / s'y."""
    V = jnp.eye(H.shape[0], dtype=H.dtype) - rho * jnp.outer(s, y)
    return V @ H @ V.T + rho * jnp.outer(s, s)


def lbfgs_direction(g, S, Y, rho):
    """L-BFGS's direction -H g by the two-loop recursion over the pairs (rows of S, Y,
    newest first; ``rho`` their 1 / s'y, 0 for an empty slot), from (s'y / y'y) I of the
    newest pair (1 / max(1, max|g|) with none)."""

    def first(q, syr):
        s, y, r = syr
        a = r * jnp.dot(s, q)
        return q - a * y, a

    q, alphas = jax.lax.scan(first, g, (S, Y, rho))
    yy = jnp.dot(Y[0], Y[0])
    gamma = jnp.where(rho[0] > 0, 1.0 / jnp.where(rho[0] > 0, rho[0] * yy, 1.0), 0.0)
    gamma = jnp.where(gamma > 0, gamma, 1.0 / jnp.maximum(1.0, jnp.max(jnp.abs(g))))

    def second(r, syra):
        s, y, rh, a = syra
        return r + s * (a - rh * jnp.dot(y, r)), None

    r, _ = jax.lax.scan(second, gamma * q, (S, Y, rho, alphas), reverse=True)
    return -r


class BFGSState(NamedTuple):
    """The optimizer between two evaluations (a pytree): the accepted point ``x`` with
    ``f``, ``g``, ``aux``; the inverse Hessian ``H``; the direction ``d`` and its line
    search ``ls``; ``fresh`` (the next update rescales H first); the L-BFGS ``pairs``
    (S, Y, 1/s'y; empty for dense BFGS); counters; ``reset`` and ``done`` flags."""

    x: jnp.ndarray
    f: jnp.ndarray
    g: jnp.ndarray
    aux: object
    H: jnp.ndarray
    d: jnp.ndarray
    ls: _Search
    fresh: jnp.ndarray
    pairs: tuple
    stall: jnp.ndarray
    n_eval: jnp.ndarray
    n_iter: jnp.ndarray
    reset: jnp.ndarray
    done: jnp.ndarray


class Tolerances(NamedTuple):
    """Stopping rules of :func:`bfgs_update` (see :func:`bfgs`)."""

    gtol: float = 1e-9
    gtol_rel: float = 1e-11
    ftol: float = 1e-15


def _search(f, g, d, aux, t) -> _Search:
    zero = jnp.zeros_like(f)
    return _Search(t=t, lo=zero, f_lo=f, dp_lo=jnp.dot(g, d), hi=zero, f_hi=f, dp_hi=zero,
                   bracketed=jnp.asarray(False), steps=jnp.asarray(0), g_lo=g, aux_lo=aux)


def _pick(c, a, b):
    return jax.tree_util.tree_map(lambda u, v: jnp.where(c, u, v), a, b)


def _scaled_eye(g):
    eye = jnp.eye(g.shape[0], dtype=g.dtype)
    return eye * jnp.minimum(1.0, 0.1 / jnp.maximum(jnp.max(jnp.abs(g)), 1e-300))


def gradient_small(f, g, tol: Tolerances):
    """max|g| <= max(gtol, gtol_rel |f|)."""
    return jnp.max(jnp.abs(g)) <= jnp.maximum(tol.gtol, tol.gtol_rel * jnp.abs(f))


def bfgs_init(x0: jnp.ndarray, hinv0: jnp.ndarray | None = None, reset=None, *,
              aux0=None, memory: int | None = None) -> BFGSState:
    """The state before the first evaluation, which is at ``x0`` itself (arguments as for
    :func:`bfgs`)."""
    n, dtype = x0.shape[0], x0.dtype
    if hinv0 is None:
        hinv0, reset = jnp.eye(n, dtype=dtype), True
    zero = jnp.zeros((), dtype)
    aux0 = jax.tree_util.tree_map(lambda a: jnp.zeros_like(jnp.asarray(a, dtype)),
                                  jnp.zeros(()) if aux0 is None else aux0)
    g0 = jnp.zeros_like(x0)
    m = memory or 0
    pairs = (jnp.zeros((m, n), dtype), jnp.zeros((m, n), dtype), jnp.zeros((m,), dtype))
    return BFGSState(
        x=x0, f=zero + jnp.inf, g=g0, aux=aux0, H=hinv0, d=g0,
        ls=_search(zero + jnp.inf, g0, g0, aux0, zero), fresh=jnp.asarray(False),
        pairs=pairs, stall=jnp.asarray(0), n_eval=jnp.asarray(0), n_iter=jnp.asarray(0),
        reset=jnp.asarray(False if reset is None else reset), done=jnp.asarray(False),
    )


def bfgs_trial(state: BFGSState) -> jnp.ndarray:
    """Where the optimizer evaluates next."""
    return state.x + state.ls.t * state.d


def bfgs_going(state: BFGSState, max_eval: int, max_iter: int | None = None):
    """Whether the optimizer wants another evaluation."""
    going = (~state.done) & (state.n_eval < max_eval)
    return going if max_iter is None else going & (state.n_iter < max_iter)


def bfgs_update(state: BFGSState, ft, gt, auxt, tol: Tolerances = Tolerances()) -> BFGSState:
    """The state after the evaluation ``(ft, gt, auxt)`` at :func:`bfgs_trial`: the line
    search goes on, or a step is taken (BFGS / L-BFGS update, new direction, new search)."""
    x, f, g, aux, H, d, ls, fresh, pairs, stall, n_eval, n_iter, reset, _ = state
    dtype = x.dtype
    eye = jnp.eye(x.shape[0], dtype=dtype)
    eps = jnp.finfo(dtype).eps
    where = jnp.where
    memory = pairs[0].shape[0] or None
    xt = bfgs_trial(state)
    dpt = jnp.dot(gt, d)
    dp0 = jnp.dot(g, d)
    first = n_eval == 0
    finite = jnp.isfinite(ft) & jnp.all(jnp.isfinite(gt))
    # (equal values pass: near an optimum f stops changing in float64 before the
    # gradient is small enough, and such steps still reduce the gradient)
    high = ~finite | (ft > f + C1 * ls.t * dp0) | ((ft > ls.f_lo) & ~first)
    wolfe = ~high & ((jnp.abs(dpt) <= -C2 * dp0) | first)
    # the bracket after this trial (Nocedal & Wright, algorithms 3.5 and 3.6)
    flip = ~high & jnp.where(ls.bracketed, dpt * (ls.hi - ls.lo) >= 0, dpt >= 0)
    new_hi = where(high, ls.t, where(flip, ls.lo, ls.hi))
    f_hi = where(high, ft, where(flip, ls.f_lo, ls.f_hi))
    dp_hi = where(high, dpt, where(flip, ls.dp_lo, ls.dp_hi))
    new_lo = where(high, ls.lo, ls.t)
    f_lo = where(high, ls.f_lo, ft)
    dp_lo = where(high, ls.dp_lo, dpt)
    g_lo = where(high, ls.g_lo, gt)
    aux_lo = _pick(high, ls.aux_lo, auxt)
    bracketed = ls.bracketed | high | flip
    t_next = where(bracketed, _cubic_step(new_lo, f_lo, dp_lo, new_hi, f_hi, dp_hi),
                   EXTRAPOLATE * ls.t)
    width = jnp.abs(new_hi - new_lo) * jnp.max(jnp.abs(d))
    exhausted = (ls.steps + 1 >= MAX_LINESEARCH) | \
        (bracketed & (width <= 1e-15 * (1.0 + jnp.max(jnp.abs(x))))) | \
        ((ls.steps + 1 >= SETTLE_AFTER) & (new_lo > 0))
    # a step ends: at the Wolfe point, or at the best point of an exhausted search
    settle = ~wolfe & exhausted & (new_lo > 0)
    step = wolfe | settle
    xs = where(wolfe, xt, x + new_lo * d)
    fs, gs = where(wolfe, ft, f_lo), where(wolfe, gt, g_lo)
    auxs = _pick(wolfe, auxt, aux_lo)
    s, y = xs - x, gs - g
    sy, yy = jnp.dot(s, y), jnp.dot(y, y)
    rho = where(sy > 1e-12 * jnp.sqrt(jnp.dot(s, s) * yy), 1.0 / sy, 0.0)
    if memory is None:
        Hb = where(fresh, (sy / where(yy > 0, yy, 1.0)) * eye, H)
        Hn = where(rho > 0, _update(Hb, s, y, rho), H)
        pairs_n = pairs
    else:  # L-BFGS: the last ``memory`` pairs, newest first; H only until there is one
        add = step & (rho > 0) & ~first
        pairs_n = tuple(where(add, jnp.roll(p, 1, axis=0).at[0].set(v), p)
                        for p, v in zip(pairs, (s, y, rho)))
        Hn = where(first, H, _scaled_eye(gs))
    Hn = where(first & reset, _scaled_eye(gs), Hn)
    fresh_n = where(first, reset, where(step, fresh & ~(rho > 0), fresh))
    # an exhausted search without any decrease: restart from steepest descent, or stop
    # when that is what failed
    stuck = ~wolfe & exhausted & (new_lo <= 0)
    give_up = stuck & fresh
    Hn = where(stuck, _scaled_eye(g), Hn)
    fresh_n = where(stuck, True, fresh_n)
    pairs_n = tuple(where(stuck, jnp.zeros_like(p), p) for p in pairs_n)
    x_n, f_n, g_n = where(step, xs, x), where(step, fs, f), where(step, gs, g)
    aux_n = _pick(step, auxs, aux)
    dn = -Hn @ g_n
    if memory is not None:
        dn = where(pairs_n[2][0] > 0, lbfgs_direction(g_n, *pairs_n), dn)
    dn = where(jnp.dot(dn, g_n) < 0, dn, -_scaled_eye(g_n) @ g_n)  # keep a descent direction
    small = (f - fs) <= tol.ftol * (1.0 + jnp.abs(fs))
    stall = where(step & ~first, where(small, stall + 1, 0), stall)
    H = where(step | stuck, Hn, H)
    d = where(step | stuck, dn, d)
    ls_new = _Search(t=t_next, lo=new_lo, f_lo=f_lo, dp_lo=dp_lo, hi=new_hi, f_hi=f_hi,
                     dp_hi=dp_hi, bracketed=bracketed, steps=ls.steps + 1, g_lo=g_lo,
                     aux_lo=aux_lo)
    ls = _pick(step | stuck, _search(f_n, g_n, d, aux_n, jnp.ones((), dtype)), ls_new)
    n_iter = n_iter + where(step & ~first, 1, 0)
    # a new direction along which f cannot measurably decrease (its slope times a unit
    # step below the rounding of f itself): as converged as floating point allows
    flat = (step | stuck) & ~first & (-jnp.dot(g_n, d) <= 8.0 * eps * jnp.abs(f_n))
    done = gradient_small(f_n, g_n, tol) | (stall >= 3) | give_up | flat | (first & ~finite)
    f_n = where(first & ~finite, ft, f_n)
    return BFGSState(x_n, f_n, g_n, aux_n, H, d, ls, fresh_n, pairs_n, stall, n_eval + 1,
                     n_iter, reset, done)


def bfgs_result(state: BFGSState, tol: Tolerances = Tolerances()) -> BFGSResult:
    """The :class:`BFGSResult` of a final state."""
    f, g = state.f, state.g
    status = jnp.where(~jnp.isfinite(f), 3,
                       jnp.where(gradient_small(f, g, tol), 0, jnp.where(state.done, 1, 2)))
    return BFGSResult(x=state.x, fun=f, grad=g, aux=state.aux, hinv=state.H,
                      n_eval=state.n_eval, n_iter=state.n_iter, status=status)


def bfgs(
    fun: Callable[[jnp.ndarray], jnp.ndarray] | None,
    x0: jnp.ndarray,
    hinv0: jnp.ndarray | None = None,
    reset=None,
    *,
    max_eval: int = 400,
    max_iter: int | None = None,
    gtol: float = 1e-9,
    gtol_rel: float = 1e-11,
    ftol: float = 1e-15,
    value_and_grad: Callable | None = None,
    aux0=None,
    memory: int | None = None,
) -> BFGSResult:
    """Minimize ``fun`` from ``x0`` (jit/vmap friendly; one evaluation per loop step).

    Stops when max|grad| <= max(gtol, gtol_rel |f|), or after three accepted steps in a row
    that each decrease f by at most ``ftol (1 + |f|)``, or when f cannot decrease
    measurably along the new direction, or when no step along steepest descent decreases
    f. Instead of ``fun`` one may give ``value_and_grad(x) -> (f, g, aux)`` (with ``aux0``
    an example of aux): aux at the solution is returned, e.g. a derivative taken in the
    same pass. ``hinv0`` (or, where ``reset`` is true, a traced flag) is replaced by a
    scaled identity whose first step moves x by at most 0.1; the first update after such a
    reset rescales it to the curvature seen (Nocedal & Wright, eq. 6.20). ``memory``: keep
    that many pairs (L-BFGS) instead of the dense inverse Hessian.

    The loop is :func:`bfgs_init`, then :func:`bfgs_trial` / evaluate / :func:`bfgs_update`
    while :func:`bfgs_going`; a caller with more points to evaluate after the optimum
    (``jaxmm.optimize.lmm.fit_program``) drives these steps itself, in one loop.

    Example:
        >>> import jax.numpy as jnp
        >>> with jaxmm.x64():
        ...     r = bfgs(lambda x: jnp.sum((x - 3.0) ** 2) + x[0] * x[1], jnp.zeros(2))
        >>> [round(float(v), 6) for v in r.x], int(r.status), int(r.n_eval)
        ([2.0, 2.0], 0, 4)
    """
    if value_and_grad is None:
        _vg = jax.value_and_grad(fun)
        aux0 = None

        def value_and_grad(x):
            f, g = _vg(x)
            return f, g, jnp.zeros((), f.dtype)
    tol = Tolerances(gtol, gtol_rel, ftol)

    def body(state):
        return bfgs_update(state, *value_and_grad(bfgs_trial(state)), tol)

    state = bfgs_init(x0, hinv0, reset, aux0=aux0, memory=memory)
    state = jax.lax.while_loop(lambda s: bfgs_going(s, max_eval, max_iter), body, state)
    return bfgs_result(state, tol)
