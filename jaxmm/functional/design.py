"""The model as a JAX pytree: per-row arrays, the static sparsity pattern, and the
unweighted crossproducts, built once on the host.

``MixedDesign`` holds NumPy float64 / int32 leaves (so they take the caller's JAX precision:
float64 inside :func:`jaxmm.x64`) and keeps everything static — the block ``Layout``, the
REML flag, names — in the pytree's auxiliary data (part of the jit cache key).

Random effects are numbered as in lme4: term by term (terms sorted by number of levels,
largest first), within a term level by level, within a level column by column. Term 1's
effects are ``(l1, q1)``; the other terms' sit at rows ``offset + level * q + column`` of the
rest block (``Layout.rest``); the flat vector ``u`` concatenates both.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax
import numpy as np
import pandas as pd

from ..core.layout import Blocks, Layout
from ..design import Design, build_design
from ..design.crossprod import crossproducts
from ..errors import ModelError
from ..optimize.start import moment_start
from ..pipeline import MAX_DENSE


@partial(
    jax.tree_util.register_dataclass,
    data_fields=[
        "y", "X", "Z1", "idx1", "zr_col", "zr_val", "zr_el", "pair_a", "pair_b",
        "blocks", "theta0",
    ],
    meta_fields=["layout", "reml", "x_names", "groups", "cnames"],
)
@dataclasses.dataclass(frozen=True)
class MixedDesign:
    """A linear mixed model's data in the form the functional API differentiates.

    Attributes:
        y: (n,) response.
        X: (n, p) fixed-effects model matrix.
        Z1: (n, q1) term 1's model matrix; ``idx1`` (n,) its level per row.
        zr_col, zr_val: (n, m) the other terms' non-zeros per row: row of the rest block,
            value (m = sum of their q; empty when there is one term).
        zr_el: (n, m) the element of ``Blocks.el_B`` each non-zero contributes to.
        pair_a, pair_b: (P,) elements whose outer product is ``Blocks.pair_v``.
        blocks: crossproducts of [Z X y] without weights (the fast path).
        theta0: starting theta (a moment estimate) for :func:`jaxmm.functional.fit`.
        layout, reml, x_names, groups, cnames: static description (aux data).

    Example:
        >>> import jax
        >>> d = jaxmm.functional.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> d.y.shape, d.X.shape, d.groups, d.cnames
        ((30,), (30, 1), ('Batch',), (('(Intercept)',),))
        >>> leaves, treedef = jax.tree_util.tree_flatten(d)   # a pytree: jit/vmap take it
        >>> jax.tree_util.tree_unflatten(treedef, leaves).x_names
        ('(Intercept)',)
    """

    y: np.ndarray
    X: np.ndarray
    Z1: np.ndarray
    idx1: np.ndarray
    zr_col: np.ndarray
    zr_val: np.ndarray
    zr_el: np.ndarray
    pair_a: np.ndarray
    pair_b: np.ndarray
    blocks: Blocks
    theta0: np.ndarray
    layout: Layout
    reml: bool
    x_names: tuple[str, ...]
    groups: tuple[str, ...]
    cnames: tuple[tuple[str, ...], ...]

    @property
    def nobs(self) -> int:
        return int(self.y.shape[0])

    @property
    def n_theta(self) -> int:
        return self.layout.n_theta

    @property
    def n_u(self) -> int:
        """Number of random effects (length of the flat ``u``)."""
        return self.layout.l1 * self.layout.q1 + self.layout.rz


def _lookup(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Positions of ``wanted`` in the sorted unique ``keys`` (all present)."""
    pos = np.searchsorted(keys, wanted)
    if wanted.size and not np.array_equal(keys[np.minimum(pos, keys.size - 1)], wanted):
        raise AssertionError("sparsity pattern mismatch")  # internal invariant
    return pos.astype(np.int32)


def from_design(design: Design, reml: bool = True) -> MixedDesign:
    """The functional model of a host :class:`jaxmm.design.Design` (see :func:`model`).

    Example:
        >>> design = jaxmm.lformula("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> d = jaxmm.functional.from_design(design, reml=False)
        >>> d.reml, d.nobs, d.n_theta, d.n_u
        (False, 30, 1, 6)
    """
    terms = design.terms
    layout, blocks = crossproducts(design.y, design.X, terms, pad=False, mode="pairs")
    if layout.r > MAX_DENSE:
        raise ModelError(
            f"the random-effects terms after the first need a dense {layout.r} x {layout.r} "
            f"block; jaxmm refuses blocks over {MAX_DENSE} rows"
        )
    n, r = design.nobs, layout.r
    t1 = terms[0]
    cols, vals = [], []
    for t, rt in zip(terms[1:], layout.rest):
        base = rt.offset + np.asarray(t.index, np.int64)[:, None] * rt.q
        cols.append(base + np.arange(rt.q)[None, :])
        vals.append(np.asarray(t.Xt, np.float64))
    zr_col = np.concatenate(cols, 1).astype(np.int32) if cols else np.zeros((n, 0), np.int32)
    zr_val = np.concatenate(vals, 1) if vals else np.zeros((n, 0))
    # Element e of el_B is the (term-1 level, rest row) pair (el_j[e], el_row[e]).
    keys = blocks.el_j.astype(np.int64) * r + blocks.el_row
    order = np.argsort(keys)
    idx1 = np.asarray(t1.index, np.int32)
    zr_el = order[_lookup(keys[order], (idx1[:, None].astype(np.int64) * r + zr_col).ravel())]
    row_b, row_a = np.divmod(blocks.pair_t.astype(np.int64), r)  # transposed targets
    jj = blocks.pair_j.astype(np.int64) * r
    pair_a = order[_lookup(keys[order], jj + row_a)].astype(np.int32)
    pair_b = order[_lookup(keys[order], jj + row_b)].astype(np.int32)
    return MixedDesign(
        y=np.asarray(design.y, np.float64),
        X=np.asarray(design.X, np.float64),
        Z1=np.asarray(t1.Xt, np.float64),
        idx1=idx1,
        zr_col=zr_col,
        zr_val=zr_val,
        zr_el=zr_el.reshape(zr_col.shape).astype(np.int32),
        pair_a=pair_a,
        pair_b=pair_b,
        blocks=blocks,
        theta0=moment_start(design.y, design.X, terms),
        layout=layout,
        reml=bool(reml),
        x_names=tuple(design.x_names),
        groups=tuple(t.group for t in terms),
        cnames=tuple(tuple(t.cnames) for t in terms),
    )


def model(formula: str, data: pd.DataFrame, reml: bool = True) -> MixedDesign:
    """Build the functional model (a pytree) of an lme4 formula on a DataFrame.

    Example:
        >>> import jaxmm
        >>> d = jaxmm.functional.model("Reaction ~ Days + (Days|Subject)",
        ...                            jaxmm.datasets.load("sleepstudy"))
        >>> d.nobs, d.n_theta, d.n_u, d.x_names
        (180, 3, 36, ('(Intercept)', 'Days'))
    """
    return from_design(build_design(formula, data), reml)
