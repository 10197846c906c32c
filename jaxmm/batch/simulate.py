"""Simulate responses from a fitted model in JAX (lme4's ``simulate.merMod``).

With ``use_u=False`` (lme4's default) each replicate draws new random effects
b ~ N(0, sigma^2 T T') per level and new noise: y = X beta + Z b + sigma e. With
``use_u=True`` the random effects are held at their conditional modes.

Replicate ``i`` uses the key ``fold_in(key(seed), i)``: the same seed gives the same
replicate ``i`` whatever the number of replicates or the chunk size, so a bootstrap
replicate can be reproduced (and refitted alone) from ``simulate``.

Example:
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> Y = m.simulate(3, seed=1)
    >>> Y.shape, bool((m.simulate(5, seed=1)[:3] == Y).all())
    ((3, 180), True)
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import ModelError
from ..precision import compute
from .responses import ResponseMap


class SimModel(NamedTuple):
    """The parameters a simulation needs (a pytree of arrays).

    Attributes:
        eta: (n,) X beta, plus Z b-hat when the modes are held fixed.
        sigma: residual standard deviation.
        Ts: per term, the (q, q) relative covariance factor (empty when ``use_u``).
        rmap: rows' levels and term columns.
    """

    eta: jnp.ndarray
    sigma: jnp.ndarray
    Ts: tuple[jnp.ndarray, ...]
    rmap: ResponseMap


def base_key(seed) -> tuple[jax.Array, int | None]:
    """A JAX key from an int seed (or a key as is); ``None`` draws a fresh seed, returned
    so that the run can be repeated."""
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % (2**63))
    if isinstance(seed, (int, np.integer)):
        return jax.random.key(int(seed)), int(seed)
    if isinstance(seed, jax.Array):
        return seed, None
    raise ModelError(f"seed must be an int, None or a JAX key, got {type(seed).__name__}")


def sim_model(model, use_u: bool = False) -> tuple[SimModel, tuple[int, ...]]:
    """The simulation parameters of a fitted model and the number of levels of each term."""
    rmap = ResponseMap.from_model(model)
    eta = model.design.X @ model.fixef.to_numpy()
    if use_u:
        eta = model.fitted()
    Ts = () if use_u else tuple(np.asarray(T, np.float64) for T in model._Ts)
    nlev = () if use_u else tuple(t.nlevels for t in model.terms)
    return SimModel(eta=eta, sigma=np.float64(model.sigma), Ts=Ts, rmap=rmap), nlev


def simulate_one(key: jax.Array, sim: SimModel, nlevels: tuple[int, ...]) -> jnp.ndarray:
    """One simulated response (n,) from ``key``: one normal draw, split into the noise and
    each term's standardized random effects (one copy of the generator in the program)."""
    n = sim.eta.shape[0]
    sizes = [nl * T.shape[0] for T, nl in zip(sim.Ts, nlevels)]
    z = jax.random.normal(key, (n + sum(sizes),), sim.eta.dtype)
    y = sim.eta + sim.sigma * z[:n]
    start = n
    for k, (T, nl, size) in enumerate(zip(sim.Ts, nlevels, sizes)):
        idx, Xt = sim.rmap.index[k], sim.rmap.Xt[k]
        u = z[start : start + size].reshape(nl, T.shape[0])
        start += size
        b = sim.sigma * (u @ T.T)  # (nlevels, q): rows ~ N(0, sigma^2 T T')
        y = y + jnp.sum(Xt * b[idx], axis=1)
    return y


def simulate_batch(key: jax.Array, idx: jnp.ndarray, sim: SimModel, nlevels: tuple[int, ...]):
    """Responses (B, n) of the replicates numbered ``idx`` (B,)."""
    keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, idx)
    return jax.vmap(simulate_one, in_axes=(0, None, None))(keys, sim, nlevels)


_simulate_jit = partial(jax.jit, static_argnames=("nlevels",))(simulate_batch)


def simulate(model, nsim: int = 1, seed=None, use_u: bool = False) -> np.ndarray:
    """Simulate ``nsim`` responses (nsim, nobs) from a fitted linear mixed model.

    Example:
        >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> simulate(m, 2, seed=0).shape
        (2, 30)
    """
    from ..results.guards import require_lmm

    require_lmm(model, "simulate")
    nsim = check_nsim(nsim)
    key, _ = base_key(seed)
    sim, nlev = sim_model(model, use_u)
    with compute():
        Y = _simulate_jit(key, jnp.arange(nsim), sim, nlev)
        return np.asarray(Y)


def check_nsim(nsim) -> int:
    if isinstance(nsim, bool) or not isinstance(nsim, (int, np.integer)) or nsim < 1:
        raise ModelError(f"nsim must be a positive integer, got {nsim!r}")
    return int(nsim)
