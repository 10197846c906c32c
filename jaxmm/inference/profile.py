"""Likelihood profiles and profile confidence intervals (lme4's ``profile`` and
``confint(method = "profile")``).

For each parameter — standard deviations and correlations of the random effects, sigma,
then the fixed effects, as lme4's ``confint`` names them — the signed square-root
deviance ``zeta(v) = sign(v - estimate) * sqrt(dev(v) - dev_min)`` is traced, where dev(v)
is the ML deviance minimized over all other parameters with this one held at v (a REML
fit is profiled on its ML refit, as lme4 does). :func:`profile` steps along each curve as
lme4's ``profile.merMod`` does (zeta steps of ``delta`` up to
``sqrt(qchisq(1 - alphamax, n_parameters))``); confidence limits are the exact solutions of
zeta(v) = +-qnorm((1 + level) / 2) (lme4 interpolates its trace with a spline instead;
the two agree to about 1e-4 relative), or the parameter's bound (an sd of 0, a correlation
of +-1) where zeta does not reach that far.

Example:
    >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
    >>> confint_profile(m).round(2)
                           2.5 %   97.5 %
    sd_(Intercept)|Batch   12.20    84.06
    sigma                  38.23    67.66
    (Intercept)          1486.45  1568.55
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from .._lazy import lazy_module

from ..errors import ModelError
from ..precision import compute
from .profile_root import Profiler

stats = lazy_module("scipy.stats")  # imported on first use (0.5 s)

if TYPE_CHECKING:  # pragma: no cover
    from ..results.lmm import LinearMixedModel


def _which(P: Profiler, which) -> list[int]:
    """Parameter indices from names, positions, or lme4's "theta_" / "beta_" groups."""
    if which is None:
        return list(range(len(P.specs)))
    if isinstance(which, (str, int, np.integer)):
        which = [which]
    nv = len(P.specs) - P.layout.p
    out: list[int] = []
    for w in which:
        if isinstance(w, (int, np.integer)):
            if not 0 <= int(w) < len(P.specs):
                raise ModelError(f"which: position {w} out of range (the model has {len(P.specs)} parameters)")
            out.append(int(w))
        elif w == "theta_":
            out += range(nv)
        elif w == "beta_":
            out += range(nv, len(P.specs))
        elif w in P.names:
            out.append(P.index(w))
        else:
            raise ModelError(f"which: unknown parameter {w!r}; the parameters are {P.names}")
    return sorted(set(out))


def percent_labels(level: float) -> list[str]:
    """R's column names for a two-sided interval: ``['2.5 %', '97.5 %']`` for 0.95.

    Example:
        >>> percent_labels(0.9), percent_labels(0.99)
        (['5 %', '95 %'], ['0.5 %', '99.5 %'])
    """
    a = (1.0 - level) / 2.0
    probs = [100.0 * a, 100.0 * (1.0 - a)]
    decimals = 0
    for p in probs:  # R's format(digits = 3): enough decimals for 3 significant digits
        s = f"{float(f'{p:.3g}'):.10f}".rstrip("0")
        decimals = max(decimals, len(s.split(".")[1]) if "." in s else 0)
    return [f"{p:.{decimals}f} %" for p in probs]


def _check_level(level: float) -> float:
    if not 0.0 < float(level) < 1.0:
        raise ModelError(f"level must be between 0 and 1, got {level}")
    return float(level)


class Profile:
    """Profile traces of a fitted model (lme4's ``thpr``).

    Attributes:
        traces: one row per profile point: ``param`` (the profiled parameter), ``value``
            (its value), ``zeta``, then every parameter's value at that point (lme4 scale).
        estimates: the ML estimates the profile is centred on.
        base_deviance: the ML deviance there.
    """

    def __init__(self, profiler: Profiler, which: list[int], points: dict[int, list]):
        self._P = profiler
        self._which = which
        self._points = points  # k -> list of (v, zeta, z, hinv)
        rows = []
        with compute():
            for k in which:
                for v, zeta, z, _ in sorted(points[k], key=lambda r: r[0]):
                    rows.append([profiler.names[k], v, zeta, *profiler.parameters(k, v, z)])
        self.traces = pd.DataFrame(rows, columns=["param", "value", "zeta", *profiler.names])
        self.estimates = pd.Series(profiler.est, index=profiler.names, name="estimate")
        self.base_deviance = profiler.base

    @property
    def params(self) -> list[str]:
        return [self._P.names[k] for k in self._which]

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Profile confidence intervals, solved exactly from the traced points.

        Example:
            >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
            >>> m.profile(which="sigma").confint(0.9).round(3)
                      5 %    95 %
            sigma  39.732  64.069
        """
        zq = stats.norm.ppf(0.5 + _check_level(level) / 2.0)
        with compute():
            return self._confint(zq, level)

    def _confint(self, zq: float, level: float) -> pd.DataFrame:
        out = []
        for k in self._which:
            lim = []
            for t in (-zq, zq):
                # start from the traced point nearest the target from inside it
                side = [r for r in self._points[k] if 0 < r[1] * t < zq * zq]
                start = None
                if side:
                    v, _, z, H = max(side, key=lambda r: abs(r[1]))
                    start = (v, z, H)
                lim.append(self._P.limit(k, t, start))
            out.append(lim)
        return pd.DataFrame(out, index=self.params, columns=percent_labels(level))

    def __repr__(self) -> str:
        return f"<Profile of {', '.join(self.params)}: {len(self.traces)} points>"


def _trace(P: Profiler, k: int, d: float, cutoff: float, delta: float, maxpts: int) -> list:
    """Step from the estimate in direction d until |zeta| > cutoff, a bound, or maxpts."""
    spec, est = P.specs[k], P.est[k]
    bound = spec.upper if d > 0 else spec.lower
    if spec.kind in ("sd", "cor") and d * (bound - est) <= 0:
        return []
    rows = [(est, 0.0, P.z_hat[k], None)]
    v, z, H = est + d * P.first_step(k), P.z_hat[k], None
    while len(rows) < maxpts:
        if math.isfinite(bound) and d * (v - bound) >= 0:
            if spec.kind == "sigma":
                v = 0.5 * (rows[-1][0] + bound)
            else:
                v = bound
        zeta, _, z, H = P.point(k, v, z, H)
        rows.append((v, zeta, z, H))
        if abs(zeta) > cutoff or v == bound:
            break
        (v0, zeta0, *_), (v1, zeta1, *_) = rows[-2], rows[-1]
        dzeta = zeta1 - zeta0
        # lme4's nextpar: the step that moves zeta by delta (secant), at most 10x the last
        step = delta * abs((v1 - v0) / dzeta) if dzeta * d > 0 else 1e-6 * max(1.0, abs(v1))
        step = min(step, 10.0 * abs(v1 - v0))
        v = v1 + d * step
    return rows[1:]


def profile(fit: LinearMixedModel, which=None, alphamax: float = 0.01, maxpts: int = 100, delta: float | None = None) -> Profile:
    """Likelihood profiles of a fitted linear mixed model (lme4's ``profile``).

    Args:
        fit: a :class:`jaxmm.LinearMixedModel`.
        which: parameter names (``"sd_Days|Subject"``, ``"sigma"``, ``"Days"``), positions,
            ``"theta_"`` (all variance parameters) or ``"beta_"`` (all fixed effects);
            default all.
        alphamax: the traces reach |zeta| = sqrt(qchisq(1 - alphamax, n_parameters)).
        maxpts: most points per direction.
        delta: zeta step between points (default: that limit / 8).

    Example:
        >>> m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff"))
        >>> pr = profile(m, which="(Intercept)")
        >>> bool(pr.traces["zeta"].is_monotonic_increasing)
        True
    """
    P = Profiler(fit)
    ks = _which(P, which)
    if not 0.0 < alphamax < 1.0:
        raise ModelError(f"alphamax must be between 0 and 1, got {alphamax}")
    if int(maxpts) < 2:
        raise ModelError(f"maxpts must be at least 2, got {maxpts}")
    cutoff = math.sqrt(stats.chi2.ppf(1.0 - alphamax, len(P.specs)))
    delta = cutoff / 8.0 if delta is None else float(delta)
    points = {}
    with compute():
        for k in ks:
            pts = [(P.est[k], 0.0, P.z_hat[k], None)]
            for d in (-1.0, 1.0):
                pts += _trace(P, k, d, cutoff, delta, int(maxpts))
            points[k] = pts
        return Profile(P, ks, points)


def confint_profile(fit: LinearMixedModel, level: float = 0.95, which: Sequence | str | None = None) -> pd.DataFrame:
    """Profile likelihood confidence intervals (lme4's ``confint(m, method = "profile")``).

    Rows are lme4's parameter names (``sd_(Intercept)|Subject``,
    ``cor_Days.(Intercept)|Subject``, ..., ``sigma``, then the fixed effects); columns are
    named from ``level`` as R does (``"2.5 %"``, ``"97.5 %"``). Each limit is the exact
    root of the profile zeta, found by Newton steps warm-started along the profile.

    Example:
        >>> m = jaxmm.lmer("Reaction ~ Days + (1|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> confint_profile(m, which="Days").round(3)
               2.5 %  97.5 %
        Days   8.887  12.048
    """
    zq = stats.norm.ppf(0.5 + _check_level(level) / 2.0)
    with compute():
        P = Profiler(fit)
        ks = _which(P, which)
        rows = [[P.limit(k, -zq), P.limit(k, zq)] for k in ks]
    return pd.DataFrame(rows, index=[P.names[k] for k in ks], columns=percent_labels(level))
