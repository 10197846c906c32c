"""Streamed designs: the crossproducts of data that need not fit in memory, in two passes.

Pass 1 reads the used columns chunk by chunk and collects, over the complete rows (rows
with a missing value in a used column are dropped, as in memory), every factor's levels in
R's order: a Categorical keeps its category order when every chunk has the same categories
(else, and for strings, the sorted labels), numbers used as grouping factors sort
numerically, logicals are FALSE/TRUE, unused levels are dropped, and ``a:b`` groups keep the
observed combinations. Pass 2 codes each chunk with those levels and adds its crossproducts
(:class:`~jaxmm.design.accumulate.CrossAccumulator`). The result equals the in-memory
design's crossproducts up to the order of summation.

What needs the rows again is not kept: a streamed fit's ``design`` holds no per-row arrays
(:class:`RowsNotKept` stand-ins raise ``DataError`` saying so), so ``fitted``,
``residuals``, type III ``anova``, Kenward-Roger and refits/bootstrap that simulate rows are
unavailable; everything computed from the crossproducts (estimates, ``summary``, ``ranef``
with conditional variances, ``vcov``, profiles, ``predict(newdata)``) works. Stateful
transforms (``scale(x)``, ``poly(x, 2)``) would need whole-data statistics: refused.

Example:
    >>> import jaxmm
    >>> sleep = jaxmm.datasets.load("sleepstudy")
    >>> chunks = [sleep.iloc[:100], sleep.iloc[100:]]
    >>> d, layout, blocks = stream_design("Reaction ~ Days + (Days|Subject)", chunks)
    >>> d.nobs, d.x_names, float(blocks.n)
    (180, ('(Intercept)', 'Days'), 180.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from ..formula import ParsedFormula, parse_formula
from .accumulate import CrossAccumulator
from .build import (
    Design,
    _check_factor_levels,
    _fixed_contrasts,
    _response,
    _response_columns,
)
from .crossprod import check_dense_size
from .data import (
    ColumnInfo,
    check_finite,
    clean_frame,
    factor_codes,
    find_column,
    is_factor_like,
    missing_mask,
    r_label,
)
from .matrix import materialize, rematerialize, required_columns
from .random import TermDesign, check_terms, lookup_levels
from .sources import CHUNK_ROWS, chunk_source
from .spec import DesignSpec, TermSpec

__all__ = ["RowsNotKept", "stream_design"]


class RowsNotKept:
    """Stands for a per-row array of a streamed fit: has a ``shape``; any use of its values
    raises ``DataError`` explaining that the rows were not kept."""

    def __init__(self, shape: tuple[int, ...], what: str):
        self.shape, self.ndim, self.what = shape, len(shape), what

    def _refuse(self, *args: Any, **kwargs: Any):
        raise DataError(
            f"this model was fitted from streamed data, whose rows were not kept ({self.what} "
            "is not available): per-row results (fitted values, residuals, type III tests, "
            "Kenward-Roger, simulation-based refits) need the data in memory; refit with a "
            "DataFrame, or use predict(newdata=...)"
        )

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"RowsNotKept({self.what}, shape={self.shape})"


for _name in ("__array__", "__getitem__", "__iter__", "__matmul__", "__rmatmul__", "__add__",
              "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__eq__",
              "__float__", "astype", "copy", "sum", "mean", "reshape", "T"):
    setattr(RowsNotKept, _name, RowsNotKept._refuse)
RowsNotKept.__hash__ = object.__hash__  # type: ignore[method-assign]


class _Levels:
    """Collects one column's levels over chunks."""

    def __init__(self) -> None:
        self.labels: set[str] = set()
        self.numeric: list[np.ndarray] = []
        self.cats: tuple | None = None
        self.same_cats, self.ordered, self.kind = True, False, None

    def add(self, s: pd.Series, grouping: bool) -> None:
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats = (tuple(factor_codes(s.iloc[:0])[1]), bool(s.dtype.ordered))
            self.same_cats &= self.cats is None or self.cats == cats
            self.cats, self.ordered = cats, cats[1]
        kind = "factor" if is_factor_like(s) else "number"
        if self.kind not in (None, kind):
            raise DataError(f"column {s.name!r} is numeric in some chunks and not in others")
        self.kind = kind
        if kind == "number" and not grouping:
            return  # numeric covariate: no levels
        if kind == "number":
            self.numeric.append(np.unique(s.to_numpy(dtype=np.float64)))
        codes, labels, _ = factor_codes(s)
        used = np.bincount(codes[codes >= 0], minlength=len(labels)) > 0
        self.labels.update(lab for lab, u in zip(labels, used) if u)

    def levels(self) -> tuple[str, ...]:
        if self.kind == "number":
            vals = np.unique(np.concatenate(self.numeric)) if self.numeric else []
            return tuple(r_label(v) for v in vals)
        if self.cats is not None and self.same_cats:
            return tuple(c for c in self.cats[0] if c in self.labels)
        if self.labels <= {"FALSE", "TRUE"}:
            return tuple(c for c in ("FALSE", "TRUE") if c in self.labels)
        return tuple(sorted(self.labels))


def _used_columns(parsed: ParsedFormula):
    resp = _response_columns(parsed.response)
    fixed = required_columns(parsed.fixed)
    lhs = {t.lhs: required_columns(t.lhs) for t in parsed.random}
    used = list(dict.fromkeys(resp + fixed + [c for t in parsed.random
                                              for c in lhs[t.lhs] + list(t.group_factors)]))
    return resp, fixed, lhs, used


def _first_pass(parsed, source, used):
    cols = {c: _Levels() for c in used}
    grouping = {f for t in parsed.random for f in t.group_factors}
    combos: dict[tuple[str, ...], set] = {t.group_factors: set() for t in parsed.random
                                         if len(t.group_factors) > 1}
    n = dropped = 0
    first = None
    for chunk in source.chunks(used):
        drop = missing_mask(chunk, used)
        rows = np.flatnonzero(~drop)
        n, dropped = n + rows.size, dropped + int(drop.sum())
        if rows.size == 0:
            continue
        check_finite(chunk, used, rows)
        sub = chunk.iloc[rows]
        if first is None:  # a few rows to build the formula specs on
            first = sub.iloc[:1000].copy()
        for c in used:
            cols[c].add(sub[c], c in grouping)
        for factors, seen in combos.items():
            parts = [factor_codes(sub[f])[:2] for f in factors]
            key = np.zeros(rows.size, np.int64)
            for codes, labels in parts:
                key = key * len(labels) + codes
            _, at = np.unique(key, return_index=True)
            seen.update(tuple(labels[codes[i]] for codes, labels in parts) for i in at)
    if first is None:
        raise DataError(f"no complete rows: all {dropped} rows have a missing value in a used "
                        "column")
    return cols, combos, n, dropped, first


def stream_design(formula: str | ParsedFormula, data: object, *, chunk_rows: int = CHUNK_ROWS,
                  pad: bool = True):
    """Two passes over chunked ``data`` (see :mod:`jaxmm.design.sources`): the design (without
    per-row arrays), the crossproduct layout and the summed blocks.

    Raises:
        DataError: unreadable data, unseen levels in pass 2, stateful transforms.
        ModelError: rank-deficient fixed effects, too large dense blocks.
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    source = chunk_source(data, chunk_rows)
    try:
        return _stream(parsed, source, pad)
    finally:
        source.close()


def _stream(parsed: ParsedFormula, source, pad: bool):
    _, fixed_cols, lhs_cols, used = _used_columns(parsed)
    if source.columns is not None:
        header = pd.DataFrame(columns=source.columns)
        for c in used:
            find_column(header, c, "a model variable")
    cols, combos, n, dropped, first = _first_pass(parsed, source, used)
    if parsed.response in cols and cols[parsed.response].kind == "factor":
        raise DataError(f"the response {parsed.response!r} is not numeric; a linear mixed "
                        "model needs a numeric response")
    infos = {c: ColumnInfo(c, True, lv.levels(), lv.ordered) if lv.kind == "factor"
             else ColumnInfo(c, False) for c, lv in cols.items()}
    proto, _ = clean_frame(first, used, np.arange(len(first)), infos)

    def block(rhs: str, what: str):
        b = materialize(rhs, proto)
        # a simple part (levels known without formulaic) has no stateful transform
        if b.levels is None and b.spec is not None and b.spec.transform_state:
            raise DataError(
                f"the {what} use a stateful transform ({', '.join(b.spec.transform_state)}) "
                "whose statistics (means, scales, bases) depend on all rows; a streamed fit "
                "cannot compute them in one chunk: transform the column beforehand")
        _check_factor_levels(b, what)
        return b

    fixed = block(parsed.fixed, "fixed effects")
    lhs_blocks = {t.lhs: block(t.lhs, f"random-effects term ({t.label})") for t in parsed.random}
    specs = []
    for t in parsed.random:
        if len(t.group_factors) == 1:
            levels = cols[t.group_factors[0]].levels()
        else:
            pos = [{lab: i for i, lab in enumerate(cols[f].levels())} for f in t.group_factors]
            tuples = sorted(combos[t.group_factors],
                            key=lambda tup: tuple(p[x] for p, x in zip(pos, tup)))
            levels = tuple(":".join(tup) for tup in tuples)
        b = lhs_blocks[t.lhs]
        specs.append(TermSpec(t.group, t.group_factors, levels, b.names, b.spec_ref,
                              tuple(lhs_cols[t.lhs]), {lv: i for i, lv in enumerate(levels)}))
    order = sorted(range(len(specs)), key=lambda i: -len(specs[i].levels))
    specs = [specs[i] for i in order]
    rterms = [parsed.random[i] for i in order]
    p_all = len(fixed.names)
    stubs = [TermDesign(s.group, s.levels, s.cnames, RowsNotKept((n,), "the level index"),
                        RowsNotKept((n, len(s.cnames)), "the term's model matrix"), t.lhs,
                        s.group_factors) for s, t in zip(specs, rterms)]
    check_terms(stubs, n)
    check_dense_size(stubs, p_all)

    acc = CrossAccumulator([len(s.levels) for s in specs], [len(s.cnames) for s in specs],
                           p_all, pad=pad)
    for chunk in source.chunks(used):
        rows = np.flatnonzero(~missing_mask(chunk, used))
        if rows.size == 0:
            continue
        frame, _ = clean_frame(chunk, used, rows, infos)
        y = _response(parsed.response, frame, False, None)
        X = rematerialize(fixed.spec, frame)
        idx, Xts = [], []
        for s in specs:
            idx.append(_index(frame, s))
            Xts.append(rematerialize(s.lhs_spec, frame))
        acc.add(y, X, idx, Xts)
    layout, blocks = acc.finish()

    names = tuple(fixed.names)
    _check_rank(blocks.A, layout.rz, p_all, names)
    spec = DesignSpec(
        fixed_ref=fixed.spec_ref, fixed_keep=np.arange(p_all), x_names=names,
        fixed_columns=tuple(fixed_cols), columns=infos, terms=tuple(specs),
        contrasts=_fixed_contrasts(fixed),
    )
    design = Design(
        y=RowsNotKept((n,), "the response"), X=RowsNotKept((n, p_all), "the model matrix X"),
        x_names=names, dropped_x=(), terms=tuple(stubs), n_dropped_rows=dropped,
        rows=RowsNotKept((n,), "the row numbers"), response=parsed.response, formula=parsed,
        spec=spec, fixed_frame=None,
    )
    return design, layout, blocks


def _index(frame: pd.DataFrame, s: TermSpec) -> np.ndarray:
    """Level index (in the design's levels) of each row of a cleaned chunk."""
    if len(s.group_factors) > 1:
        return lookup_levels(frame, s.group_factors, s.level_index, s.group, False)
    codes, labels, _ = factor_codes(frame[s.group_factors[0]])
    lut = np.array([s.level_index.get(lab, -1) for lab in labels] + [-1], dtype=np.int64)
    idx = lut[codes]
    if (idx < 0).any():
        raise DataError(f"grouping factor {s.group!r} has levels in the second pass over the "
                        "data that the first pass did not see; the data changed between passes")
    return idx.astype(np.int32)


def _check_rank(A: np.ndarray, rz: int, p: int, names: tuple[str, ...]) -> None:
    """Refuse aliased fixed-effect columns (a streamed fit cannot drop them as lme4 does)."""
    XtX = A[rz : rz + p, rz : rz + p]
    d = np.sqrt(np.diag(XtX))
    if (d == 0).any() or np.linalg.eigvalsh(XtX / np.outer(d, d)).min() < 1e-12:
        raise ModelError(
            "the fixed-effects model matrix is rank deficient (columns: "
            f"{', '.join(names)}); a streamed fit does not drop aliased columns: remove the "
            "aliased terms from the formula (fit a sample in memory to see which ones)"
        )
