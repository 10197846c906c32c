"""``build_design``: from an lme4 formula and a DataFrame to the arrays the fit needs,
once, on the host, with R/lme4 semantics (see the package docstring).

Example:
    >>> from jaxmm import datasets
    >>> d = build_design("strength ~ 1 + (1 | batch/cask)", datasets.load("Pastes"))
    >>> [(t.group, t.nlevels) for t in d.terms], d.x_names
    ([('cask:batch', 30), ('batch', 10)], ('(Intercept)',))
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError, RankDeficiencyWarning
from ..formula import ParsedFormula, parse_formula, to_formulaic
from .contrasts import Contrast
from .data import ColumnInfo, check_dataframe, check_finite, clean_frame, find_column
from .data import is_factor_like, missing_mask, read_columns
from .matrix import Block, block_levels, materialize, part_key, required_columns
from .random import TermDesign, check_terms, group_index
from .spec import DesignSpec, TermSpec

__all__ = ["Design", "build_design"]


@dataclass(frozen=True, eq=False)
class Design:
    """Everything about a mixed model that is fixed before fitting.

    Attributes:
        y: float64 (n,) response.
        X: float64 (n, p) fixed-effects model matrix, full column rank.
        x_names: lme4's coefficient names, in order.
        dropped_x: aliased columns removed for rank deficiency.
        terms: random-effects terms sorted by number of levels, decreasing (lme4's order).
        n_dropped_rows: rows dropped for missing values.
        rows: 0-based positions in the input data of the rows used.
        response: the response expression.
        formula: the parsed formula.
        spec: rebuilds the matrices on new data.
        fixed_frame: the cleaned data frame of the used columns (type III hypotheses rebuild
            the fixed part from it).
    """

    y: np.ndarray
    X: np.ndarray
    x_names: tuple[str, ...]
    dropped_x: tuple[str, ...]
    terms: tuple[TermDesign, ...]
    n_dropped_rows: int
    rows: np.ndarray
    response: str
    formula: ParsedFormula
    spec: DesignSpec
    fixed_frame: pd.DataFrame | None = None

    @property
    def nobs(self) -> int:
        """Number of observations used."""
        return int(self.y.shape[0])

    @property
    def ngroups(self) -> dict[str, int]:
        """Levels of each distinct grouping factor, in term order (lme4's ``ngrps``)."""
        return {t.group: t.nlevels for t in self.terms}

    @property
    def contrasts(self) -> dict[str, Contrast]:
        """Contrasts of each factor in the fixed effects (R's ``attr(X, "contrasts")``)."""
        return self.spec.contrasts


def cbind_parts(response: str) -> tuple[str, str] | None:
    """The two expressions of ``cbind(a, b)`` (split at the top-level comma), else None."""
    text = response.strip()
    if not text.replace(" ", "").startswith("cbind(") or not text.endswith(")"):
        return None
    inner = text[text.index("(") + 1 : -1]
    depth = 0
    for i, ch in enumerate(inner):
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            a, b = inner[:i].strip(), inner[i + 1 :].strip()
            if a and b:
                return a, b
            break
    raise ModelError(f"the response {response!r} must be cbind(successes, failures) with two "
                     "expressions")


def _response_columns(response: str, glmm: bool = False) -> list[str]:
    parts = cbind_parts(response)
    if parts is not None:
        if not glmm:
            raise ModelError(
                f"the response {response!r} is a two-column binomial response; build_design "
                "handles linear mixed models with a single numeric response"
            )
        return list(dict.fromkeys(c for part in parts for c in required_columns(to_formulaic(part))))
    return required_columns(to_formulaic(response))


_SIMPLE_DIFF = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*([-+])\s*([A-Za-z_][A-Za-z0-9_.]*)\s*$")


def _simple_diff(expr: str, frame: pd.DataFrame) -> np.ndarray | None:
    """``a - b`` / ``a + b`` of two numeric columns (``size - incidence``) without formulaic."""
    m = _SIMPLE_DIFF.match(expr)
    if m and m[1] in frame.columns and m[3] in frame.columns:
        a, b = frame[m[1]], frame[m[3]]
        if all(pd.api.types.is_numeric_dtype(c) and not pd.api.types.is_bool_dtype(c)
               for c in (a, b)):
            a, b = a.to_numpy(np.float64), b.to_numpy(np.float64)
            return a - b if m[2] == "-" else a + b
    return None


def _response(response: str, frame: pd.DataFrame, glmm: bool,
              full_frame: Callable[[], pd.DataFrame] | None) -> np.ndarray:
    parts = cbind_parts(response) if glmm else None
    if parts is not None:  # (n, 2): successes, failures
        cols = []
        for p in parts:
            v = _simple_diff(p, frame) if p not in frame.columns else None
            cols.append(v if v is not None else
                        _response(p if p in frame.columns else f"I({p})", frame, False, full_frame))
        return np.column_stack(cols)
    if response in frame.columns:
        s = frame[response]
        if isinstance(s.dtype, pd.CategoricalDtype) and glmm:
            # glm's binomial rule: the first level is failure (0), all others success
            return (s.cat.codes.to_numpy() != 0).astype(np.float64)
        if isinstance(s.dtype, pd.CategoricalDtype):
            levels = ", ".join(map(str, s.cat.categories[:5]))
            raise DataError(
                f"the response {response!r} is not numeric (a factor with levels {levels}); "
                "a linear mixed model needs a numeric response"
            )
        return np.asarray(s, dtype=np.float64)
    v = _simple_diff(response, frame)
    if v is not None:
        return v
    block = materialize(f"0 + {to_formulaic(response)}", frame, full_frame)
    kinds = block_levels(block)
    if block.matrix.shape[1] != 1 or kinds:
        raise DataError(f"the response {response!r} does not evaluate to one numeric column")
    return block.matrix[:, 0].copy()


def _check_block_finite(block: Block, what: str) -> None:
    bad = ~np.isfinite(block.matrix)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        raise DataError(
            f"{what} column {block.names[j]!r} has {int(bad[:, j].sum())} non-finite values "
            "(NaN or infinite) after evaluating the formula; check the transformation"
        )


def _check_factor_levels(block: Block, what: str) -> None:
    """R's "contrasts can be applied only to factors with 2 or more levels"."""
    for expr, (levels, _) in block_levels(block).items():
        if len(levels) < 2:
            raise DataError(
                f"factor {expr!r} in the {what} has {len(levels)} level "
                f"({', '.join(map(repr, levels))}) among the rows used; a factor needs 2 or "
                "more levels (R: contrasts can be applied only to factors with 2 or more "
                "levels). Remove it from the formula or check the data."
            )


def _fixed_contrasts(block: Block) -> dict[str, Contrast]:
    return {expr: Contrast.for_factor(levels, ordered)
            for expr, (levels, ordered) in block_levels(block).items()
            if len(levels) >= 2}


def build_design(formula: str | ParsedFormula, data: pd.DataFrame, *, glmm: bool = False
                 ) -> Design:
    """Build the host-side design of an lme4 model: y, X, and per-term indices/matrices.

    Rows with a missing value in any used column are dropped; factors get R's contrasts
    (treatment; polynomial for ordered); aliased fixed-effect columns are dropped with a
    ``RankDeficiencyWarning``; random-effects terms are sorted as lme4 sorts them.
    ``glmm=True`` applies glmer's looser checks (as many levels as observations allowed)
    and reads a factor response as binomial (first level 0, others 1).

    Raises:
        FormulaError, ColumnNotFoundError, DataError, ModelError: with messages naming
        the formula part, column or term at fault.

    Example:
        >>> from jaxmm import datasets
        >>> d = build_design("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
        >>> d.X.shape, d.x_names, [(t.group, t.cnames) for t in d.terms]
        ((180, 2), ('(Intercept)', 'Days'), [('Subject', ('(Intercept)', 'Days'))])
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    data = check_dataframe(data)

    # 1. the columns each part reads
    resp_cols = _response_columns(parsed.response, glmm)
    fixed_cols = required_columns(parsed.fixed)
    lhs_cols = {t.lhs: required_columns(t.lhs) for t in parsed.random}
    for col in resp_cols:
        find_column(data, col, "the response")
    for col in fixed_cols:
        find_column(data, col, "a fixed effect")
    for t in parsed.random:
        for col in lhs_cols[t.lhs]:
            find_column(data, col, f"random-effects term ({t.label})")
        for col in t.group_factors:
            find_column(data, col, f"grouping factor of ({t.label})")
    used = list(dict.fromkeys(resp_cols + fixed_cols + [c for t in parsed.random for c in
                                                       lhs_cols[t.lhs] + list(t.group_factors)]))
    columns = read_columns(data, used)
    s = columns.get(parsed.response)
    if s is None and parsed.response in data.columns:
        s = data[parsed.response]
    if s is not None and is_factor_like(s) and not pd.api.types.is_bool_dtype(s.dtype) \
            and not glmm:
        what = "a factor" if isinstance(s.dtype, pd.CategoricalDtype) else f"of dtype {s.dtype}"
        raise DataError(f"the response {parsed.response!r} is not numeric ({what}); a linear "
                        "mixed model needs a numeric response")

    # 2. R's na.omit, then finiteness
    drop = missing_mask(columns, used)
    rows = np.flatnonzero(~drop)
    if rows.size == 0:
        counts = {c: int(data[c].isna().sum()) for c in used if data[c].isna().any()}
        raise DataError(f"no complete rows: all {len(data)} rows have a missing value in a "
                        f"used column (missing per column: {counts})")
    check_finite(columns, used, rows)
    frame, infos = clean_frame(columns, used, rows)

    def full_frame() -> pd.DataFrame:
        return clean_frame(data, used, np.arange(len(data)))[0]

    # 3. response and fixed effects
    full = full_frame if drop.any() else None
    y = _response(parsed.response, frame, glmm, full)
    if not np.isfinite(y).all():
        raise DataError(f"the response {parsed.response!r} has non-finite values after "
                        "evaluation; check the transformation")
    fixed = materialize(parsed.fixed, frame, full)
    # formula parts with the same terms (the fixed part and a slope term's "Days" = "1 + Days")
    # are materialized once
    blocks: dict[tuple, Block] = {part_key(parsed.fixed): fixed}
    _check_block_finite(fixed, "fixed-effect")
    _check_factor_levels(fixed, "fixed effects")
    from .rank import independent_columns

    keep = independent_columns(fixed.matrix)
    dropped = tuple(nm for nm, k in zip(fixed.names, keep) if not k)
    if dropped:
        k = len(dropped)
        warnings.warn(
            f"fixed-effect model matrix is rank deficient so dropping {k} column"
            f"{'s' if k > 1 else ''} / coefficient{'s' if k > 1 else ''}: "
            + ", ".join(repr(d) for d in dropped),
            RankDeficiencyWarning, stacklevel=2,
        )
    X = np.ascontiguousarray(fixed.matrix[:, keep])

    # 4. random-effects terms
    terms, specs = [], []
    for t in parsed.random:
        key = part_key(t.lhs)
        if key not in blocks:
            blocks[key] = materialize(t.lhs, frame, full)
            _check_block_finite(blocks[key], f"random-effects term ({t.label})")
            _check_factor_levels(blocks[key], f"random-effects term ({t.label})")
        block = blocks[key]
        if block.matrix.shape[1] == 0:
            raise ModelError(f"random-effects term ({t.label}) has no columns; write (1 | "
                             f"{t.group}) for a random intercept")
        index, levels = group_index(frame, t.group_factors)
        terms.append(TermDesign(t.group, levels, block.names, index, block.matrix,
                                t.lhs, t.group_factors))
        specs.append(TermSpec(t.group, t.group_factors, levels, block.names, block.spec_ref,
                              tuple(lhs_cols[t.lhs]), {lv: i for i, lv in enumerate(levels)}))
    order = sorted(range(len(terms)), key=lambda i: -terms[i].nlevels)  # stable
    terms = [terms[i] for i in order]
    specs = [specs[i] for i in order]
    check_terms(terms, len(rows), glmm=glmm)

    spec = DesignSpec(
        fixed_ref=fixed.spec_ref,
        fixed_keep=np.flatnonzero(keep),
        x_names=tuple(nm for nm, k in zip(fixed.names, keep) if k),
        fixed_columns=tuple(fixed_cols),
        columns={c: infos[c] for c in used if isinstance(infos.get(c), ColumnInfo)},
        terms=tuple(specs),
        contrasts=_fixed_contrasts(fixed),
    )
    return Design(
        y=y, X=X, x_names=spec.x_names, dropped_x=dropped, terms=tuple(terms),
        n_dropped_rows=int(drop.sum()), rows=rows, response=parsed.response,
        formula=parsed, spec=spec, fixed_frame=frame,
    )
