"""Host-side data handling with R's semantics: column lookup, factor levels, missing rows.

* Factors keep a ``pd.Categorical``'s level order; strings become factors with sorted
  levels, booleans ``FALSE``/``TRUE``, numbers (as grouping factors) sorted numerically,
  exactly as R's ``factor()``; level labels are R's (``1`` not ``1.0``).
* Rows with a missing value in any used column are dropped (R's ``na.omit``), then
  unused factor levels are dropped (lme4's ``drop.unused.levels = TRUE``).

Example:
    >>> import pandas as pd
    >>> codes, labels, ordered = factor_codes(pd.Series([3.0, 1.0, None, 3.0]))
    >>> codes.tolist(), labels
    ([1, 0, -1, 1], ['1', '3'])
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ColumnNotFoundError, DataError

__all__ = [
    "ColumnInfo",
    "r_label",
    "factor_codes",
    "is_factor_like",
    "check_dataframe",
    "find_column",
    "missing_mask",
    "check_finite",
    "clean_frame",
    "read_columns",
    "to_factor",
]


@dataclass(frozen=True)
class ColumnInfo:
    """How a used data column was read: numeric, or a factor with these levels."""

    name: str
    factor: bool
    levels: tuple[str, ...] = ()
    ordered: bool = False


def r_label(value: object) -> str:
    """R's ``as.character`` of a level value: ``TRUE``, ``1`` (not ``1.0``), ``0.5``.

    Example:
        >>> r_label(2.0), r_label(True), r_label(0.1)
        ('2', 'TRUE', '0.1')
    """
    if isinstance(value, (bool, np.bool_)):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if v.is_integer() and abs(v) < 1e15:
            return str(int(v))
        return f"{v:.15g}"
    return str(value)


def _labels(values: pd.Index) -> list[str]:
    """``r_label`` of each value; fast for string-valued indexes."""
    if isinstance(values.dtype, pd.StringDtype):
        return values.tolist()  # str already (categories hold no missing values)
    if pd.api.types.is_string_dtype(values.dtype) and not pd.api.types.is_object_dtype(values.dtype):
        return values.astype(str).tolist()
    return [r_label(v) for v in values.tolist()]


def is_factor_like(series: pd.Series) -> bool:
    """Whether R would treat the column as a factor (categorical, string, or logical)."""
    dtype = series.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_bool_dtype(dtype)
            or pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))


def factor_codes(series: pd.Series) -> tuple[np.ndarray, list[str], bool]:
    """R's ``factor(x)``: integer codes (-1 for missing), level labels, ordered flag.

    Example:
        >>> factor_codes(pd.Series(["b", "a", "b"]))[:2]
        (array([1, 0, 1]), ['a', 'b'])
    """
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.array.codes.astype(np.int64)
        return codes, _labels(dtype.categories), bool(dtype.ordered)
    if pd.api.types.is_bool_dtype(dtype):
        na = series.isna().to_numpy()
        codes = np.where(na, -1, series.fillna(False).to_numpy(dtype=bool).astype(np.int64))
        return codes, ["FALSE", "TRUE"], False
    values = series
    if not pd.api.types.is_numeric_dtype(dtype):
        na = series.isna()
        values = series.astype(object).where(na, series.astype(str))
    try:
        codes, uniques = pd.factorize(values, sort=True, use_na_sentinel=True)
    except TypeError:  # unorderable mixture of types
        codes, uniques = pd.factorize(series.astype(str), sort=True, use_na_sentinel=True)
    return codes.astype(np.int64), _labels(pd.Index(uniques)), False


def check_dataframe(data: object) -> pd.DataFrame:
    """Raise ``DataError`` unless ``data`` is a non-empty pandas DataFrame."""
    if not isinstance(data, pd.DataFrame):
        raise DataError(
            f"data must be a pandas DataFrame, got {type(data).__name__}; "
            "convert it with pd.DataFrame(...)"
        )
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise DataError(f"data is empty ({data.shape[0]} rows, {data.shape[1]} columns)")
    return data


def find_column(data: pd.DataFrame, name: str, role: str) -> str:
    """Return ``name`` if it is a column of ``data``; else raise ``ColumnNotFoundError``
    suggesting close matches (``"did you mean 'Reaction'?"``)."""
    if name in data.columns:
        return name
    cols = [str(c) for c in data.columns]
    close = difflib.get_close_matches(name, cols, n=3, cutoff=0.6)
    close += [c for c in cols if c.lower() == name.lower() and c not in close]
    if close:
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?"
    else:
        hint = "; the data have columns " + ", ".join(map(repr, cols[:20])) + \
            (", ..." if len(cols) > 20 else "")
    raise ColumnNotFoundError(f"column {name!r} not found{hint} (used as {role})")


def _isna(series: pd.Series) -> np.ndarray | None:
    """Missing-value mask of a column; None when it cannot hold missing values."""
    dtype = series.dtype
    if isinstance(dtype, np.dtype):
        if dtype.kind == "f":
            return np.isnan(series.to_numpy())
        if dtype.kind in "iub":
            return None
    elif isinstance(dtype, pd.CategoricalDtype):
        return series.array.codes < 0
    return series.isna().to_numpy()


def _as_float(series: pd.Series) -> np.ndarray:
    """A numeric column as float64, missing values as NaN."""
    if isinstance(series.dtype, np.dtype) and series.dtype.kind in "fiub":
        return np.asarray(series.to_numpy(), dtype=np.float64)
    return series.to_numpy(dtype=np.float64, na_value=np.nan)


def missing_mask(data: pd.DataFrame | Mapping[str, pd.Series], columns: Iterable[str]
                 ) -> np.ndarray:
    """Boolean (n,) mask of rows with a missing value (NA/NaN/None) in any column (of a
    DataFrame, or of a mapping of column names to Series: see :func:`read_columns`).

    Example:
        >>> df = pd.DataFrame({"x": [1.0, None, 3.0], "g": ["a", "b", None]})
        >>> missing_mask(df, ["x", "g"]).tolist()
        [False, True, True]
    """
    columns = list(columns)
    n = len(data) if isinstance(data, pd.DataFrame) or not columns else len(data[columns[0]])
    mask = np.zeros(n, dtype=bool)
    for col in columns:
        na = _isna(data[col])
        if na is not None:
            mask |= na
    return mask


def read_columns(data: pd.DataFrame, columns: Iterable[str]) -> dict[str, pd.Series]:
    """The columns of ``data`` as Series, each looked up once (``data[col]`` costs ~8 us
    in pandas 3, and model building reads each used column in several passes).

    Example:
        >>> list(read_columns(pd.DataFrame({"x": [1.0], "g": ["a"]}), ["g"]))
        ['g']
    """
    return {col: data[col] for col in columns}


def check_finite(data: pd.DataFrame | Mapping[str, pd.Series], columns: Iterable[str],
                 rows: np.ndarray) -> None:
    """Raise ``DataError`` naming the column if a used numeric column holds +-inf."""
    for col in columns:
        s = data[col]
        if is_factor_like(s) or not pd.api.types.is_numeric_dtype(s.dtype):
            continue
        if isinstance(s.dtype, np.dtype) and s.dtype.kind in "iub":
            continue  # integers and booleans are finite
        vals = _as_float(s)
        vals = vals[rows] if len(rows) != len(vals) else vals
        bad = int(np.isinf(vals).sum())
        if bad:
            raise DataError(
                f"column {col!r} has {bad} infinite value{'s' if bad > 1 else ''}; "
                "remove or replace them (missing values are dropped, infinite ones are not)"
            )


def to_factor(series: pd.Series, levels: Sequence[str] | None = None,
              ordered: bool = False) -> tuple[pd.Categorical, list[str]]:
    """A Categorical with R level labels; with ``levels``, values are matched to them
    and the labels not among them are returned as the second item."""
    dtype = series.dtype
    if levels is None and _string_categories(dtype):
        return _drop_unused(series.array), []
    codes, labels, was_ordered = factor_codes(series)
    if levels is None:
        used = np.zeros(len(labels), dtype=bool)
        used[codes[codes >= 0]] = True
        remap = np.cumsum(used) - 1
        new_codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        kept = [lab for lab, u in zip(labels, used) if u]
        return pd.Categorical.from_codes(new_codes, categories=kept, ordered=was_ordered), []
    index = {lab: i for i, lab in enumerate(levels)}
    lut = np.array([index.get(lab, -2) for lab in labels] + [-1], dtype=np.int64)
    new_codes = lut[codes]  # codes == -1 picks the trailing -1
    unknown = sorted({labels[c] for c in codes[new_codes == -2]})
    new_codes[new_codes == -2] = -1
    return pd.Categorical.from_codes(new_codes, categories=list(levels), ordered=ordered), unknown


def _string_categories(dtype) -> bool:
    """A Categorical dtype with string levels (R's labels already)."""
    return isinstance(dtype, pd.CategoricalDtype) and \
        pd.api.types.is_string_dtype(dtype.categories.dtype) and \
        not pd.api.types.is_object_dtype(dtype.categories.dtype)


def _drop_unused(cat: pd.Categorical) -> pd.Categorical:
    """The Categorical without its unused levels (itself when all are used)."""
    codes = cat.codes
    used = np.bincount(codes[codes >= 0], minlength=len(cat.categories)) > 0
    return cat if used.all() else cat.remove_unused_categories()


def clean_frame(data: pd.DataFrame | Mapping[str, pd.Series], columns: Sequence[str],
                rows: np.ndarray,
                infos: dict[str, ColumnInfo] | None = None
                ) -> tuple[pd.DataFrame, dict[str, ColumnInfo]]:
    """The used columns at ``rows``, factors as Categoricals with R labels.

    Without ``infos`` (model building), unused levels are dropped and the resulting
    ``ColumnInfo`` s returned. With ``infos`` (new data), factors get the recorded levels
    and a level not among them raises ``DataError``.
    """
    out: dict[str, object] = {}
    new_infos: dict[str, ColumnInfo] = {}
    for col in columns:
        s = data[col]
        info = (infos or {}).get(col)
        subset = len(rows) != len(s)
        if info is None and _string_categories(s.dtype):  # no Series of the subset needed
            cat = _drop_unused(s.array.take(rows) if subset else s.array)
            out[col] = cat
            new_infos[col] = ColumnInfo(col, True, tuple(cat.categories.tolist()),
                                        bool(cat.ordered))
            continue
        if (info is None or not info.factor) and isinstance(s.dtype, np.dtype) \
                and s.dtype.kind in "fiu":  # numbers: no Series of the subset either
            out[col] = _as_float(s)[rows] if subset else _as_float(s)
            new_infos[col] = ColumnInfo(col, False)
            continue
        s = s.iloc[rows] if subset else s
        if info is not None and info.factor:
            cat, unknown = to_factor(s, info.levels, info.ordered)
            if unknown:
                raise DataError(
                    f"column {col!r} has level{'s' if len(unknown) > 1 else ''} "
                    f"{', '.join(map(repr, unknown[:5]))} not seen when the model was built "
                    f"(known levels: {', '.join(info.levels[:10])})"
                )
            out[col] = cat
        elif is_factor_like(s) and info is None:
            cat, _ = to_factor(s)
            out[col] = cat
            levels = tuple(cat.categories.to_numpy(dtype=object).tolist())
            new_infos[col] = ColumnInfo(col, True, levels, bool(cat.ordered))
        else:
            if is_factor_like(s):
                raise DataError(f"column {col!r} must be numeric, as in the data the model "
                                f"was built from, but it has dtype {s.dtype}")
            if not pd.api.types.is_numeric_dtype(s.dtype):
                raise DataError(f"column {col!r} has dtype {s.dtype}, which is neither numeric "
                                "nor categorical; convert it to numbers or to a Categorical")
            out[col] = _as_float(s)
            new_infos[col] = ColumnInfo(col, False)
    frame = pd.DataFrame(out, index=pd.RangeIndex(len(rows)), copy=False)
    return frame, (new_infos if infos is None else dict(infos))
