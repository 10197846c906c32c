"""A DataFrame that prints its heading above it, as R's anova tables do."""

from __future__ import annotations

import pandas as pd


class AnovaTable(pd.DataFrame):
    """An anova or likelihood-ratio table: a pandas DataFrame with a ``heading`` (lines
    printed above the table). Everything else is plain pandas.

    Example:
        >>> t = AnovaTable({"F value": [2.0]}, index=["x"])
        >>> t.heading = ["Analysis of Variance Table"]
        >>> print(t)
        Analysis of Variance Table
           F value
        x      2.0
    """

    _metadata = ["heading"]

    @property
    def _constructor(self):
        return AnovaTable

    def _head(self) -> str:
        lines = list(getattr(self, "heading", None) or [])
        return "\n".join(lines) + "\n" if lines else ""

    def __repr__(self) -> str:
        return self._head() + pd.DataFrame(self).__repr__()

    def __str__(self) -> str:
        return self.__repr__()

    def _repr_html_(self) -> str:
        import html

        head = "".join(f"<p>{html.escape(h)}</p>" for h in (getattr(self, "heading", None) or []))
        return head + pd.DataFrame(self).to_html(float_format=lambda v: f"{v:.6g}", na_rep="")


def with_heading(df: pd.DataFrame, *lines: str) -> AnovaTable:
    out = AnovaTable(df)
    out.heading = list(lines)
    return out
