"""The y-dependent crossproducts of many responses on one design, as one batched computation.

The criterion sees y only through Z'y, X'y and y'y (``core.layout.with_response``): for a
batch of responses Y (B, n) these are segment sums over rows by level (the sparse Z'y) and
one matrix product (X'Y), all in JAX, no per-response Python.

Example:
    >>> import jax.numpy as jnp, numpy as np
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> rmap = ResponseMap.from_model(m)
    >>> with jaxmm.x64():
    ...     C1y, Ay = batch_crossproducts(jnp.asarray(m.design.y)[None, :], rmap, m.devfun.layout)
    >>> bool(np.allclose(C1y[0], m.devfun.blocks.C1[..., -1]) and np.allclose(Ay[0], m.devfun.blocks.A[-1]))
    True
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import ops

from ..core.layout import Layout


class ResponseMap(NamedTuple):
    """What maps a response to its crossproducts (a pytree of arrays).

    Attributes:
        X: (n, p) fixed-effects matrix.
        index: per term (layout order), (n,) int32 level of each row.
        Xt: per term, (n, q) the term's model matrix.
    """

    X: jnp.ndarray
    index: tuple[jnp.ndarray, ...]
    Xt: tuple[jnp.ndarray, ...]

    @staticmethod
    def from_design(design) -> "ResponseMap":
        """From a :class:`jaxmm.design.Design` (terms already in layout order)."""
        return ResponseMap(
            X=np.asarray(design.X, np.float64),
            index=tuple(np.asarray(t.index, np.int32) for t in design.terms),
            Xt=tuple(np.asarray(t.Xt, np.float64) for t in design.terms),
        )

    @staticmethod
    def from_model(model) -> "ResponseMap":
        """From a fitted :class:`jaxmm.LinearMixedModel`."""
        return ResponseMap.from_design(model.design)


def _zy(Y: jnp.ndarray, index: jnp.ndarray, Xt: jnp.ndarray, nlevels: int) -> jnp.ndarray:
    """(B, nlevels, q): per level, sum over its rows of Xt[i, c] * Y[b, i]."""
    prod = Xt[:, :, None] * Y.T[:, None, :]  # (n, q, B)
    out = ops.segment_sum(prod, index, num_segments=nlevels)  # (nlevels, q, B)
    return jnp.transpose(out, (2, 0, 1))


def batch_crossproducts(Y: jnp.ndarray, rmap: ResponseMap, layout: Layout):
    """For responses Y (B, n): term 1's Z1'y per level (B, l1, q1) and the y row of the
    dense rest block (B, r) = [Z_rest'y (padded), X'y, y'y]."""
    C1y = _zy(Y, rmap.index[0], rmap.Xt[0], layout.l1)
    B = Y.shape[0]
    parts, end = [], 0
    for term, idx, Xt in zip(layout.rest, rmap.index[1:], rmap.Xt[1:]):
        if term.offset > end:
            parts.append(jnp.zeros((B, term.offset - end), Y.dtype))
        parts.append(_zy(Y, idx, Xt, term.nlevels).reshape(B, -1))
        end = term.offset + term.nlevels * term.q
    if layout.rz > end:
        parts.append(jnp.zeros((B, layout.rz - end), Y.dtype))
    parts.append(Y @ rmap.X)
    parts.append(jnp.sum(Y * Y, axis=1, keepdims=True))
    return C1y, jnp.concatenate(parts, axis=1)


batch_crossproducts_jit = jax.jit(batch_crossproducts, static_argnames=("layout",))
