"""Functions available inside formulas, with R's meaning.

formulaic already provides ``log``, ``exp``, ``log2``, ``log10``, ``I``, ``poly``, ``C``.
This adds R's ``sqrt``, ``abs``, ``log1p``, ``expm1``, trigonometric functions, ``pi``,
``factor(x)`` and an R ``scale(x)``: centre by the mean and divide by the standard
deviation (n - 1), both computed ignoring missing values, remembered for new data (R's
``makepredictcall`` does the same).

Example:
    >>> import numpy as np
    >>> state = {}
    >>> scale(np.array([1.0, 2.0, 3.0, np.nan]), _state=state).tolist()[:3]
    [-1.0, 0.0, 1.0]
    >>> scale(np.array([4.0]), _state=state).tolist()
    [2.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from formulaic.utils.stateful_transforms import stateful_transform

from .data import factor_codes

__all__ = ["scale", "factor", "CONTEXT"]


@stateful_transform
def scale(  # pylint: disable=dangerous-default-value  # replaced by stateful_transform
    x: Any, center: Any = True, scale: Any = True, _state: dict = {}
) -> np.ndarray:
    """R's ``scale(x, center = TRUE, scale = TRUE)`` for one column, NA-aware."""
    v = np.asarray(x, dtype=np.float64)
    if "center" not in _state:
        if center is True:
            _state["center"] = float(np.nanmean(v))
        elif center is False or center is None:
            _state["center"] = None
        else:
            _state["center"] = float(center)
    if _state["center"] is not None:
        v = v - _state["center"]
    if "scale" not in _state:
        if scale is True:
            ok = v[~np.isnan(v)]
            _state["scale"] = float(np.sqrt(np.sum(ok**2) / max(1, ok.size - 1)))
        elif scale is False or scale is None:
            _state["scale"] = None
        else:
            _state["scale"] = float(scale)
    if _state["scale"] is not None:
        v = v / _state["scale"]
    return v


def factor(x: Any) -> pd.Series:
    """R's ``factor(x)``: a categorical with R's level order and labels.

    Example:
        >>> list(factor(pd.Series([10, 2, 2])).cat.categories)
        ['2', '10']
    """
    s = x if isinstance(x, pd.Series) else pd.Series(np.asarray(x))
    codes, labels, ordered = factor_codes(s)
    cat = pd.Categorical.from_codes(codes, categories=labels, ordered=ordered)
    return pd.Series(cat, index=s.index)


CONTEXT: dict[str, Any] = {
    "scale": scale,
    "factor": factor,
    "sqrt": np.sqrt,
    "abs": np.abs,
    "log1p": np.log1p,
    "expm1": np.expm1,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "pi": np.pi,
    "inf": np.inf,
}
