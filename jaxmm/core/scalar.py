"""The criterion of a model whose random-effects terms are all scalar, with a closed-form
gradient in theta.

With every term scalar, ``Lambda`` is diagonal: term 1 contributes ``c_j = theta_1^2 /
(theta_1^2 d_j + 1)`` per level (``d_j`` its diagonal of Z'Z), the rest block is

    S = D (A - U(c)) D + I_z,   U(c) = sum_j c_j k_j k_j'   (linear in c),

with ``D`` = theta_k on term k's rows and 1 on X and y, and the criterion is
``f = sum_j log(theta_1^2 d_j + 1) + sum_i w_i log L_ii^2 + const`` with ``L L' = S``.
Writing ``G = L^{-T} W L^{-1}`` (so that ``(S G)_aa = w_a``):

* for a rest term k, ``dS/dtheta_k = (E_k (S - I_z) + (S - I_z) E_k) / theta_k``, hence
  ``df/dtheta_k = (2 / theta_k) sum_{a in k} (1 - G_aa)`` — only G's diagonal;
* for term 1, ``df/dtheta_1 = sum_j 2 theta_1 d_j / M_j - <D G D, U(c')>`` with
  ``c'_j = 2 theta_1 / M_j^2`` — one gather of G over the update's sparse pattern.

Reverse-mode autodiff of the same computation transposes every gather and scatter of the
sparse update and the diagonal scalings (three times the cost of the criterion on
InstEval); this rule costs the criterion plus ``G``. Derivatives with respect to the data
blocks (the functional API differentiates y and X) fall back to autodiff.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import ops
from jax.custom_derivatives import SymbolicZero

from .layout import Blocks, Layout, row_weights
from .logchol import chol_lower, gram_inverse

#: Dense rest blocks at least this large use the closed-form gradient (smaller ones:
#: plain autodiff, whose cost there is negligible and whose Hessian is exact).
MIN_R = 512


def applies(layout: Layout) -> bool:
    """Whether :func:`objective` handles this layout (every term scalar, large rest block;
    the update by pairs — the class update of :mod:`jaxmm.design.classes` takes the
    generic path).

    Example:
        >>> from jaxmm.core.layout import Layout, RestTerm
        >>> applies(Layout(q1=1, l1=3000, rest=(RestTerm(1, 1200, 0),), rz=1200, p=2, qs=(1, 1)))
        True
    """
    return all(q == 1 for q in layout.qs) and layout.r >= MIN_R


def _update(c: jnp.ndarray, blocks: Blocks, layout: Layout) -> jnp.ndarray:
    """U(c) in the rest block's unscaled space, lower triangle (Z-Z from the sorted pairs,
    X/y rows dense), linear in c."""
    r, rz = layout.r, layout.rz
    C1 = blocks.C1[:, 0, :]  # (l1, p+1)
    xx = (C1 * c[:, None]).T @ C1
    zz = blocks.pair_v[:, 0, 0] * c[blocks.pair_j]
    zz = ops.segment_sum(zz, blocks.pair_t, num_segments=rz * r + 1, indices_are_sorted=True)
    xz = (blocks.el_B[:, 0] * c[blocks.el_j])[:, None] * C1[blocks.el_j]
    xz = ops.segment_sum(xz, blocks.el_row, num_segments=rz)  # (rz, p+1)
    bottom = jnp.concatenate([xz.T, xx], axis=1)
    return jnp.concatenate([zz[: rz * r].reshape(rz, r), bottom], axis=0)


def _row_scale(theta: jnp.ndarray, layout: Layout) -> jnp.ndarray:
    """Diagonal of D: theta_k on term k's rows (padded levels too), 1 elsewhere."""
    d = [jnp.broadcast_to(theta[1 + k], (t.nlevels,)) for k, t in enumerate(layout.rest)]
    pad = jnp.ones(layout.r - sum(t.nlevels for t in layout.rest), theta.dtype)
    return jnp.concatenate(d + [pad])


def _pieces(theta, blocks: Blocks, layout: Layout, w):
    d1 = blocks.D1[:, 0, 0]
    M = theta[0] ** 2 * d1 + 1.0
    Dv = _row_scale(theta, layout)
    ii = jax.lax.broadcasted_iota(jnp.int32, (layout.r, layout.r), 0)
    eye_z = ((ii == ii.T) & (ii < layout.rz)).astype(theta.dtype)
    S = Dv[:, None] * (blocks.A - _update(theta[0] ** 2 / M, blocks, layout)) * Dv[None, :] + eye_z
    L = chol_lower(S)
    f = jnp.sum(jnp.log(M)) + jnp.sum(w * jnp.log(jnp.diagonal(L) ** 2))
    return f, M, Dv, L


def _value(theta, blocks: Blocks, layout: Layout, reml: bool):
    N = blocks.n - (layout.p if reml else 0)
    w = row_weights(layout, reml, N, theta.dtype)
    f = _pieces(theta, blocks, layout, w)[0]
    return f + N * (1.0 + jnp.log(2.0 * math.pi / N))


def gradient(theta: jnp.ndarray, blocks: Blocks, layout: Layout, reml: bool = True):
    """Value and closed-form gradient of the criterion of an all-scalar model.

    Example:
        >>> import jaxmm, jax, jax.numpy as jnp
        >>> from jaxmm.core.objective import objective as objective_generic  # autodiff here
        >>> m = jaxmm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", jaxmm.datasets.load("Penicillin"))
        >>> d = m.devfun
        >>> with jaxmm.x64():
        ...     th = jnp.asarray([1.2, 3.1])
        ...     f, g = gradient(th, d.blocks, d.layout, True)
        ...     g_ad = jax.grad(objective_generic)(th, d.blocks, d.layout, True)
        ...     print(bool(jnp.allclose(g, g_ad, rtol=1e-8)))
        True
    """
    N = blocks.n - (layout.p if reml else 0)
    w = row_weights(layout, reml, N, theta.dtype)
    f, M, Dv, L = _pieces(theta, blocks, layout, w)
    f = f + N * (1.0 + jnp.log(2.0 * math.pi / N))
    G = gram_inverse(L, w)
    # Rest terms: (2 / theta_k) sum over the term's rows of (1 - G_aa).
    gdiag = 1.0 - jnp.diagonal(G)
    g_rest = []
    for k, t in enumerate(layout.rest):
        tk = theta[1 + k]
        s = jnp.sum(gdiag[t.offset : t.offset + t.nlevels])
        safe = jnp.where(tk == 0, 1.0, tk)
        g_rest.append(jnp.where(tk == 0, 0.0, 2.0 * s / safe))
    # Term 1: derivative of the log determinant of its blocks, minus <D G D, U(c')> over the
    # lower triangle (off-diagonal entries of the symmetric G count twice).
    d1, t1 = blocks.D1[:, 0, 0], theta[0]
    cprime = 2.0 * t1 / M**2
    g1 = jnp.sum(2.0 * t1 * d1 / M) - _inner(G, Dv, cprime, blocks, layout)
    return f, jnp.stack([g1] + g_rest)


def _inner(G: jnp.ndarray, Dv: jnp.ndarray, c: jnp.ndarray, blocks: Blocks, layout: Layout):
    """<H, U(c)> over U's lower triangle, H = D G D with off-diagonal entries counted twice
    (G symmetric, U stored lower), by gathers of G over U's pattern (never forming U or H)."""
    r, rz = layout.r, layout.rz
    Gflat = jnp.concatenate([G[:rz].reshape(-1), jnp.zeros((1,), G.dtype)])
    a, b = blocks.pair_t // r, blocks.pair_t % r  # padding: a = rz, b = 0, G value 0
    wp = jnp.where(a == b, 1.0, 2.0) * Dv[a] * Dv[b]
    zz = jnp.sum(Gflat[blocks.pair_t] * wp * blocks.pair_v[:, 0, 0] * c[blocks.pair_j])
    C1 = blocks.C1[:, 0, :]
    Hzx = 2.0 * Dv[:rz, None] * G[:rz, rz:]  # Z rows against X/y columns
    e = blocks.el_row
    xz = jnp.sum((blocks.el_B[:, 0] * c[blocks.el_j])[:, None] * C1[blocks.el_j] * Hzx[e])
    Gxx = G[rz:, rz:]
    Hxx = jnp.tril(2.0 * Gxx) - jnp.diag(jnp.diagonal(Gxx))
    xx = jnp.sum(Hxx * ((C1 * c[:, None]).T @ C1))
    return zz + xz + xx


@partial(jax.custom_jvp, nondiff_argnums=(2, 3))
def objective(theta: jnp.ndarray, blocks: Blocks, layout: Layout, reml: bool = True):
    """REML criterion or ML deviance of an all-scalar model (same value as
    :func:`jaxmm.core.objective.objective`), differentiated by :func:`gradient`.

    Example:
        >>> import jaxmm, jax.numpy as jnp
        >>> m = jaxmm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", jaxmm.datasets.load("Penicillin"))
        >>> with jaxmm.x64():
        ...     f = objective(jnp.asarray(m.theta_vector), m.devfun.blocks, m.devfun.layout, True)
        >>> round(float(f), 4)
        330.8606
    """
    return _value(theta, blocks, layout, reml)


def _jvp(layout, reml, primals, tangents):
    theta, blocks = primals
    dtheta, dblocks = tangents
    f, g = gradient(theta, blocks, layout, reml)
    df = 0.0 if isinstance(dtheta, SymbolicZero) else jnp.dot(g, dtheta)
    leaves = jax.tree_util.tree_leaves(dblocks, is_leaf=lambda x: isinstance(x, SymbolicZero))
    if not all(isinstance(x, SymbolicZero) for x in leaves):
        # The data blocks move too (functional API): their part by autodiff at fixed theta.
        dense = jax.tree_util.tree_map(
            lambda t, p: jnp.zeros(jnp.shape(p), jax.dtypes.float0 if _is_int(p) else p.dtype)
            if isinstance(t, SymbolicZero) else t,
            dblocks, blocks, is_leaf=lambda x: isinstance(x, SymbolicZero),
        )
        df = df + jax.jvp(lambda b: _value(theta, b, layout, reml), (blocks,), (dense,))[1]
    return f, jnp.asarray(df, f.dtype) * jnp.ones_like(f)


def _is_int(x) -> bool:
    return not jnp.issubdtype(jnp.result_type(x), jnp.inexact)


objective.defjvp(_jvp, symbolic_zeros=True)
