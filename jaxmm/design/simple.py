"""The model matrix of a *simple* formula part (``1 + Days``, ``period``, ``0 + x``,
``1 + Time * Drug``: see :mod:`jaxmm.formula.simple`), built with NumPy alone.

It gives what formulaic with :class:`~jaxmm.design.materializer.RMaterializer` gives, to
the bit: R's contrasts (``contr.treatment``, first level the reference; ``contr.poly`` for
ordered factors), R's ``TermCode`` rule for which factors of a term get contrasts and which
full dummies, factors within a term in R's variable order, columns of an interaction
varying fastest in their first factor (products taken in formulaic's order), R's column
names. It applies only when every variable is a float64 column or a Categorical with at
least 2 levels and no missing codes in the frame; otherwise (and for anything not simple)
``build_simple`` returns None and the caller uses formulaic.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "g": pd.Categorical(["a", "b", "c"])})
    >>> s = build_simple("1 + x * g", df)
    >>> s.names
    ('(Intercept)', 'x', 'gb', 'gc', 'x:gb', 'x:gc')
    >>> s.matrix[:, 4:].tolist(), s.levels
    ([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], {'g': (('a', 'b', 'c'), False)})
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache, reduce

import numpy as np
import pandas as pd

from ..formula.simple import SimplePart, parse_simple
from .contrasts import contr_poly, contr_treatment, poly_suffixes
from .data import r_label

__all__ = ["SimpleMatrix", "build_simple"]

Levels = dict[str, tuple[tuple[str, ...], bool]]


@dataclass(frozen=True, eq=False)
class SimpleMatrix:
    """A simple part's model matrix.

    Attributes:
        matrix: float64 (n, k), C-contiguous.
        names: R's column names.
        levels: levels and ordered flag of each factor, in formulaic's encoding order
            (what ``categorical_levels`` reads from formulaic's ``ModelSpec``).
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    levels: Levels


@dataclass(frozen=True)
class _Factor:
    codes: np.ndarray
    levels: tuple[str, ...]
    ordered: bool


@lru_cache(maxsize=256)
def _coding(n: int, ordered: bool, reduced: bool) -> np.ndarray:
    if not reduced:
        return np.eye(n)
    # + 0.0: formulaic's dummies @ coding turns contr.poly's -0.0 into 0.0
    return contr_poly(n) + 0.0 if ordered else contr_treatment(n)


def _variable(frame: pd.DataFrame, name: str) -> np.ndarray | _Factor | None:
    """A float64 column or a factor; None for what only formulaic handles."""
    if name not in frame.columns:
        return None
    s = frame[name]
    if not isinstance(s, pd.Series):  # duplicated column name
        return None
    dtype = s.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = s.array.codes
        levels = tuple(r_label(c) for c in dtype.categories.tolist())
        if len(levels) < 2 or (codes < 0).any():
            return None  # formulaic reports these (too few levels) or codes them
        return _Factor(codes, levels, bool(dtype.ordered))
    if isinstance(dtype, np.dtype) and dtype == np.float64:
        return s.to_numpy()
    return None


def _term_columns(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Row-wise Kronecker product of the factors' columns, first factor fastest, multiplied
    as formulaic does: single columns first (in order), then ((m1 * m2) * ...) * singles."""
    solo = [p[:, 0] for p in parts if p.shape[1] == 1]
    multi = [p for p in parts if p.shape[1] > 1]
    out: np.ndarray | None = None
    for m in multi:
        out = m if out is None else (out[:, None, :] * m[:, :, None]).reshape(n, -1)
    if solo:
        s = reduce(np.multiply, solo)
        out = s[:, None] if out is None else out * s[:, None]
    assert out is not None
    return out


def build_simple(rhs: str, frame: pd.DataFrame) -> SimpleMatrix | None:
    """The model matrix, R's names and the factor levels of ``rhs`` on the cleaned
    ``frame``, or None when ``rhs`` or its columns are not simple (see module).

    Example:
        >>> df = pd.DataFrame({"d": [0.0, 1.0], "s": pd.Categorical(["u", "v"])})
        >>> build_simple("0 + s:d", df).names, build_simple("log(d)", df)
        (('su:d', 'sv:d'), None)
    """
    part = parse_simple(rhs)
    n = len(frame)
    if part is None or n == 0:
        return None
    values = {}
    for name in part.variables:
        v = _variable(frame, name)
        if v is None:
            return None
        values[name] = v
    return _build(part, values, n)


def _build(part: SimplePart, values: dict[str, np.ndarray | _Factor], n: int) -> SimpleMatrix:
    rank = {v: i for i, v in enumerate(part.variables)}
    dummy_pending = not part.intercept  # the first factor then gets all its levels
    previous: list[frozenset[str]] = []
    blocks: list[np.ndarray] = []
    names: list[str] = []
    levels: Levels = {}
    for term in part.terms:
        if not term:
            blocks.append(np.ones((n, 1)))
            names.append("(Intercept)")
            previous.append(frozenset())
            continue
        variables = sorted(term, key=rank.__getitem__)
        here = frozenset(variables)
        parts, labels = [], []
        for name in variables:
            v = values[name]
            if not isinstance(v, _Factor):
                parts.append(v[:, None])
                labels.append([name])
                continue
            rest = here - {name}
            reduced = not rest or any(rest <= p for p in previous)
            if dummy_pending:
                reduced, dummy_pending = False, False
            levels.setdefault(name, (v.levels, v.ordered))
            parts.append(_coding(len(v.levels), v.ordered, reduced)[v.codes])
            if not reduced:
                suffixes = list(v.levels)
            else:
                suffixes = poly_suffixes(len(v.levels)) if v.ordered else list(v.levels[1:])
            labels.append([name + s for s in suffixes])
        previous.append(here)
        blocks.append(_term_columns(parts, n))
        names.extend(":".join(reversed(c)) for c in itertools.product(*reversed(labels)))
    matrix = np.concatenate(blocks, axis=1) if blocks else np.empty((n, 0))
    return SimpleMatrix(np.ascontiguousarray(matrix, dtype=np.float64), tuple(names), levels)
