"""What prediction on new data needs: the same fixed-effect columns (contrasts and
stateful transforms such as ``scale()`` as learnt from the original data) and the same
random-effects terms and levels.

Example:
    >>> from jaxmm import datasets
    >>> from jaxmm.design import build_design
    >>> d = build_design("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
    >>> new = datasets.load("sleepstudy").head(3)
    >>> d.spec.fixed_matrix(new).tolist()
    [[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]
    >>> [idx.tolist() for idx, Xt in d.spec.term_matrices(new, allow_new_levels=False)]
    [[0, 0, 0]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from .contrasts import Contrast
from .data import ColumnInfo, check_dataframe, clean_frame, find_column, missing_mask
from .matrix import rematerialize, resolve_spec
from .random import lookup_levels

__all__ = ["DesignSpec", "TermSpec"]


@dataclass(frozen=True, eq=False)
class TermSpec:
    """A random-effects term as built: its lhs spec, grouping columns and levels.

    ``lhs_ref`` is the left-hand side's formulaic ``ModelSpec``, or a ``LazySpec`` that
    computes it when ``lhs_spec`` is first read.
    """

    group: str
    group_factors: tuple[str, ...]
    levels: tuple[str, ...]
    cnames: tuple[str, ...]
    lhs_ref: Any
    lhs_columns: tuple[str, ...]
    level_index: dict[str, int] = field(repr=False, compare=False, default_factory=dict)

    @property
    def lhs_spec(self) -> Any:
        """formulaic's ``ModelSpec`` of the left-hand side (None: intercept only).

        Example:
            >>> from jaxmm import datasets
            >>> from jaxmm.design import build_design
            >>> d = build_design("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
            >>> [str(t) for t in d.spec.terms[0].lhs_spec.formula]
            ['1', 'Days']
        """
        return resolve_spec(self.lhs_ref)


@dataclass(frozen=True, eq=False)
class DesignSpec:
    """Rebuild a ``Design``'s matrices on new data.

    Attributes:
        fixed_ref: formulaic ``ModelSpec`` of the fixed effects (before dropping aliased
            columns), or a ``LazySpec`` computing it when ``fixed_spec`` is first read.
        fixed_keep: indices of the kept (not aliased) fixed-effect columns.
        x_names: names of the kept columns.
        fixed_columns: data columns the fixed effects read.
        columns: how each used data column was read (numeric, or factor levels).
        terms: the random-effects terms, in the ``Design``'s order.
        contrasts: the contrasts of each factor in the fixed effects.
    """

    fixed_ref: Any
    fixed_keep: np.ndarray
    x_names: tuple[str, ...]
    fixed_columns: tuple[str, ...]
    columns: dict[str, ColumnInfo]
    terms: tuple[TermSpec, ...]
    contrasts: dict[str, Contrast] = field(default_factory=dict)

    @property
    def fixed_spec(self) -> Any:
        """formulaic's ``ModelSpec`` of the fixed effects (None: intercept only).

        Example:
            >>> from jaxmm import datasets
            >>> from jaxmm.design import build_design
            >>> d = build_design("Reaction ~ Days + (Days | Subject)", datasets.load("sleepstudy"))
            >>> [str(t) for t in d.spec.fixed_spec.formula]
            ['1', 'Days']
        """
        return resolve_spec(self.fixed_ref)

    def _frame(self, newdata: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
        check_dataframe(newdata)
        for col in columns:
            find_column(newdata, col, "a model variable")
        bad = missing_mask(newdata, columns)
        if bad.any():
            cols = [c for c in columns if newdata[c].isna().any()]
            raise DataError(
                f"new data have {int(bad.sum())} rows with missing values in "
                f"{', '.join(map(repr, cols))}; drop or impute them before predicting"
            )
        infos = {c: self.columns[c] for c in columns if c in self.columns}
        frame, _ = clean_frame(newdata, columns, np.arange(len(newdata)), infos)
        return frame

    def fixed_matrix(self, newdata: pd.DataFrame) -> np.ndarray:
        """The fixed-effects model matrix (same columns as ``Design.X``) for ``newdata``.

        Raises ``DataError`` for missing columns or values and for unseen factor levels.
        """
        frame = self._frame(newdata, self.fixed_columns)
        X = rematerialize(self.fixed_spec, frame)
        return np.ascontiguousarray(X[:, self.fixed_keep])

    def term_matrices(self, newdata: pd.DataFrame, allow_new_levels: bool = False
                      ) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each random-effects term, ``(index, Xt)`` on ``newdata``: the level index
        (int32, -1 for a level not seen in fitting when ``allow_new_levels``) and the
        term's model matrix. Raises ``DataError`` naming the term for a new level otherwise.
        """
        out = []
        for t in self.terms:
            frame = self._frame(newdata, t.lhs_columns)
            Xt = rematerialize(t.lhs_spec, frame)
            raw = self._frame_groups(newdata, t.group_factors)
            index = lookup_levels(raw, t.group_factors, t.level_index, t.group, allow_new_levels)
            out.append((index, Xt))
        return out

    def _frame_groups(self, newdata: pd.DataFrame, factors: tuple[str, ...]) -> pd.DataFrame:
        check_dataframe(newdata)
        for col in factors:
            find_column(newdata, col, "a grouping factor")
        return newdata.loc[:, list(factors)]
