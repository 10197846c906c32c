"""Bootstrap confidence intervals from replicate draws (NumPy): percentile, shortest, normal.

- ``percentile``: the (R+1) * alpha-th order statistics, interpolated on the normal
  quantile scale between neighbours when not an integer (the rule of R's ``boot.ci``,
  which lme4's ``confint(method="boot")`` uses).
- ``shortest``: the shortest interval holding ``level`` of the draws (MixedModels.jl's
  ``shortestcovint``).
- ``normal``: bias-corrected normal interval ``2 t0 - mean(t*) -/+ z sd(t*)`` (``boot.ci``'s
  "norm").

Example:
    >>> import numpy as np
    >>> draws = np.arange(1.0, 100.0)
    >>> percentile_interval(draws, 0.9), shortest_interval(draws, 0.9)
    ((5.0, 95.0), (1.0, 90.0))
"""

from __future__ import annotations

import numpy as np
from .._lazy import lazy_module

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)


def _order_stat(sorted_t: np.ndarray, k: float) -> float:
    R = sorted_t.size
    lo = int(np.floor(k))
    if abs(k - round(k)) < 1e-9:
        return float(sorted_t[int(np.clip(round(k), 1, R)) - 1])
    if lo < 1:
        return float(sorted_t[0])
    if lo >= R:
        return float(sorted_t[-1])
    # interpolate between order statistics lo and lo+1 on the normal quantile scale
    z = stats.norm.ppf([lo / (R + 1), (lo + 1) / (R + 1), k / (R + 1)])
    w = (z[2] - z[0]) / (z[1] - z[0])
    return float(sorted_t[lo - 1] + w * (sorted_t[lo] - sorted_t[lo - 1]))


def percentile_interval(t: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the draws ``t`` (NaNs ignored)."""
    s = np.sort(t[np.isfinite(t)])
    if s.size == 0:
        return (np.nan, np.nan)
    a = (1.0 - level) / 2.0
    R = s.size
    return _order_stat(s, (R + 1) * a), _order_stat(s, (R + 1) * (1.0 - a))


def shortest_interval(t: np.ndarray, level: float) -> tuple[float, float]:
    """Shortest interval containing a fraction ``level`` of the draws (NaNs ignored)."""
    s = np.sort(t[np.isfinite(t)])
    if s.size == 0:
        return (np.nan, np.nan)
    k = max(1, int(np.ceil(level * s.size)))  # draws inside
    widths = s[k - 1 :] - s[: s.size - k + 1]
    i = int(np.argmin(widths))
    return float(s[i]), float(s[i + k - 1])


def normal_interval(t: np.ndarray, level: float, t0: float) -> tuple[float, float]:
    """Bias-corrected normal interval around the original estimate ``t0``."""
    s = t[np.isfinite(t)]
    if s.size < 2 or not np.isfinite(t0):
        return (np.nan, np.nan)
    z = stats.norm.ppf(0.5 + level / 2.0)
    center = 2.0 * t0 - s.mean()
    half = z * s.std(ddof=1)
    return float(center - half), float(center + half)


def pct_label(p: float) -> str:
    """R's column label for a probability: 0.025 -> ``"2.5 %"``."""
    return f"{100 * p:.3g} %"
