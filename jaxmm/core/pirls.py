"""Penalized iteratively reweighted least squares (PIRLS) for GLMMs, in pure JAX.

For fixed covariance parameters theta (and fixed beta, unless ``with_beta``), the conditional
modes u* minimize the penalized deviance ``sum(dev_resid(eta)) + |u|^2`` with
``eta = offset + X beta + Z Lambda u``. Each Newton (Fisher scoring) step solves
``(Lambda'Z'WZ Lambda + I) delta = ...`` with the same blocked structure as the linear model:
term 1 (most levels) is block-diagonal, one q1 x q1 block per level (closed form for q1 <= 2);
the other terms (and beta, when it is updated inside PIRLS as in lme4's nAGQ = 0) form one
dense block, reached by a Schur complement. Z is never formed: every crossproduct is a
segment sum or a scatter-add over the observations.

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> import jaxmm
    >>> from jaxmm.core.pirls import from_design, pirls
    >>> d = jaxmm.lformula("Reaction ~ Days + (1|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> fam = jaxmm.poisson()
    >>> data, lay = from_design(d, fam, fam.response(np.round(d.y / 100), None, np.zeros(180), "y"))
    >>> with jaxmm.x64():
    ...     sol = pirls(jnp.ones(1), jnp.asarray([1.0, 0.1]), jnp.zeros(18), data, lay, False)
    >>> bool(sol.converged)
    True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..covariance import tril_colmajor
from ..errors import ModelError
from ..family import Family, Response
from . import small
from .glmm_system import (  # noqa: F401  (dense_factor: re-exported for results)
    Factor, Pattern, cross_pattern, dense_factor, factor, schur, solve,
)
from .logchol import weighted_logchol

#: Largest dense block (rows) of the non-first terms (+ beta) PIRLS will build.
MAX_REST = 6000
#: Largest dense cross block (rest rows x term-1 columns), in elements.
MAX_CROSS = 60_000_000


class GlmmLayout(NamedTuple):
    """Static description (hashable; part of the jit cache key)."""

    qs: tuple[int, ...]
    nlevels: tuple[int, ...]
    p: int
    family: Family

    @property
    def n_theta(self) -> int:
        return sum(q * (q + 1) // 2 for q in self.qs)

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(q * n for q, n in zip(self.qs, self.nlevels))

    @property
    def nu(self) -> int:
        return sum(self.sizes)

    @property
    def n1q1(self) -> int:
        return self.sizes[0]

    @property
    def rz(self) -> int:
        return self.nu - self.n1q1


class GlmmData(NamedTuple):
    """Arrays of one GLMM (a pytree).

    Attributes:
        X: (n, p) fixed-effects matrix.
        resp: the :class:`~jaxmm.family.Response`.
        idx: per term, (n,) level of each observation.
        Xt: per term, (n, q) the term's model matrix.
        rest_cols: (n, m) column of each observation's entries in the dense block (terms 2..).
        pattern: the sparse pattern of term 1's cross block, or None (dense).
    """

    X: jnp.ndarray
    resp: Response
    idx: tuple
    Xt: tuple
    rest_cols: jnp.ndarray
    pattern: Pattern | None = None


def from_design(design, family: Family, resp: Response) -> tuple[GlmmData, GlmmLayout]:
    """Host-side arrays and static layout of a GLMM (checks the dense-block size)."""
    terms = design.terms
    lay = GlmmLayout(tuple(t.q for t in terms), tuple(t.nlevels for t in terms),
                     int(design.X.shape[1]), family)
    r = lay.rz + lay.p
    if r > MAX_REST or r * lay.n1q1 > MAX_CROSS:
        sizes = ", ".join(f"{t.group}: {t.nlevels} levels x {t.q}" for t in terms)
        raise ModelError(
            f"the random-effects terms after the first ({sizes}) need a dense block of {r} "
            f"rows for PIRLS; jaxmm's GLMMs refuse more than {MAX_REST} rows (or a cross block "
            f"over {MAX_CROSS:.0e} elements). Drop or nest a term with many levels.")
    cols, off = [], 0
    for t in terms[1:]:
        cols.append(off + t.index[:, None].astype(np.int64) * t.q + np.arange(t.q)[None, :])
        off += t.nlevels * t.q
    n = design.X.shape[0]
    rest_cols = np.concatenate(cols, axis=1).astype(np.int32) if cols else np.zeros((n, 0), np.int32)
    data = GlmmData(  # NumPy leaves: converted to float64 JAX arrays inside the jitted calls
        X=np.asarray(design.X, np.float64),
        resp=Response(*(np.broadcast_to(np.asarray(a, np.float64), (n,)).copy() for a in resp)),
        idx=tuple(np.asarray(t.index, np.int32) for t in terms),
        Xt=tuple(np.asarray(t.Xt, np.float64) for t in terms), rest_cols=rest_cols,
        pattern=cross_pattern(rest_cols, np.asarray(terms[0].index), lay.rz, lay.nlevels[0],
                              lay.qs[0]),
    )
    return data, lay


# ----- theta -> Lambda, linear predictor -------------------------------------------------
def T_list(theta: jnp.ndarray, lay: GlmmLayout) -> list[jnp.ndarray]:
    out, s = [], 0
    for q in lay.qs:
        k = q * (q + 1) // 2
        r, c = tril_colmajor(q)
        out.append(jnp.zeros((q, q), theta.dtype).at[r, c].set(theta[s : s + k]))
        s += k
    return out


def z_lambda(theta, data: GlmmData, lay: GlmmLayout) -> list[jnp.ndarray]:
    """Per term, the rows of Z Lambda: (n, q) = Xt @ T."""
    return [Xt @ T for Xt, T in zip(data.Xt, T_list(theta, lay))]


def split_u(u, lay: GlmmLayout) -> list[jnp.ndarray]:
    out, s = [], 0
    for q, nl in zip(lay.qs, lay.nlevels):
        out.append(u[s : s + q * nl].reshape(nl, q))
        s += q * nl
    return out


def linear_predictor(u, beta, zl, data: GlmmData, lay: GlmmLayout) -> jnp.ndarray:
    eta = data.resp.offset + data.X @ beta
    for z, uk, idx in zip(zl, split_u(u, lay), data.idx):
        eta = eta + jnp.sum(z * uk[idx], axis=1)
    return eta


# ----- the blocked system (see glmm_system) ------------------------------------------
def logdet_weights(w, zl, data: GlmmData, lay: GlmmLayout) -> jnp.ndarray:
    """lme4's ldL2 = log det(Lambda'Z'WZ Lambda + I), with a cheap exact derivative."""
    L11, _, _, S = schur(w, zl, data, lay, False)
    out = small.logdiag2(L11)
    if lay.rz:
        out = out + weighted_logchol(S, jnp.ones(lay.rz))
    return out


def logdet_u(F: Factor, rz: int) -> jnp.ndarray:
    """log det of the random-effects part (lme4's ldL2)."""
    out = small.logdiag2(F.L11)
    if rz:
        out = out + 2.0 * jnp.sum(jnp.log(jnp.diagonal(F.L22)[:rz]))
    return out


# ----- PIRLS -------------------------------------------------------------------------------
class PirlsResult(NamedTuple):
    v: jnp.ndarray  # u, then beta when updated inside PIRLS
    pdev: jnp.ndarray
    decrement: jnp.ndarray
    n_iter: jnp.ndarray
    converged: jnp.ndarray

    @staticmethod
    def zeros(v0) -> "PirlsResult":
        """A placeholder of :func:`pirls`'s output types (a skipped branch's result)."""
        z = jnp.zeros((), jnp.result_type(v0))
        return PirlsResult(jnp.zeros_like(v0), z, z, jnp.zeros((), int),
                           jnp.zeros((), bool))


def unpack(v, beta, lay: GlmmLayout, with_beta: bool):
    return (v[: lay.nu], v[lay.nu :]) if with_beta else (v, beta)


def penalized_deviance(v, theta, beta, data: GlmmData, lay: GlmmLayout, with_beta: bool):
    u, b = unpack(v, beta, lay, with_beta)
    eta = linear_predictor(u, b, z_lambda(theta, data, lay), data, lay)
    return jnp.sum(lay.family.dev_resid(eta, data.resp)) + u @ u


def pirls(theta, beta, v0, data: GlmmData, lay: GlmmLayout, with_beta: bool,
          maxiter: int = 60, tol: float = 1e-14) -> PirlsResult:
    """Conditional modes (and beta if ``with_beta``) for fixed theta (and beta otherwise).

    Fisher-scoring steps with step halving on the penalized deviance; stops when the Newton
    decrement ``g' M^{-1} g`` falls below ``tol * (1 + pdev)``.
    """
    zl = z_lambda(theta, data, lay)
    fam = lay.family

    def pdev(v):
        u, b = unpack(v, beta, lay, with_beta)
        eta = linear_predictor(u, b, zl, data, lay)
        return jnp.sum(fam.dev_resid(eta, data.resp)) + u @ u

    def body(state):
        v, f, _, it, _ = state
        u, b = unpack(v, beta, lay, with_beta)
        eta = linear_predictor(u, b, zl, data, lay)
        w = fam.fisher_weights(eta, data.resp)
        g = 0.5 * jax.grad(pdev)(v)
        delta = -solve(factor(w, zl, data, lay, with_beta), g, data, lay)
        dec = -g @ delta

        def halve(c):
            s, _ = c
            return s * 0.5, pdev(v + 0.5 * s * delta)

        def worse(c):
            s, fn = c
            return (~(fn <= f + 1e-13 * (1.0 + jnp.abs(f)))) & (s > 1e-4)

        s, fn = jax.lax.while_loop(worse, halve, (jnp.asarray(1.0), pdev(v + delta)))
        ok = fn <= f + 1e-13 * (1.0 + jnp.abs(f))
        v_new = jnp.where(ok, v + s * delta, v)
        f_new = jnp.where(ok, fn, f)
        done = (dec <= tol * (1.0 + jnp.abs(f))) | ~ok
        return v_new, f_new, dec, it + 1, done

    def cond(state):
        v, f, dec, it, done = state
        return (~done) & (it < maxiter) & jnp.isfinite(f)

    f0 = pdev(v0)
    v, f, dec, it, _ = jax.lax.while_loop(cond, body, (v0, f0, jnp.inf, 0, False))
    conv = jnp.isfinite(f) & (dec <= 1e-8 * (1.0 + jnp.abs(f)))
    return PirlsResult(v, f, dec, it, conv)
