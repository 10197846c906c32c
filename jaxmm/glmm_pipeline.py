"""``glmer`` and its stages, as lme4 splits them: glFormula -> mkGlmerDevfun -> optimizeGlmer
-> mkMerMod.

Example:
    >>> import jaxmm
    >>> cbpp = jaxmm.datasets.load("cbpp")
    >>> g = jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
    ...                 family="binomial")
    >>> round(g.loglik, 2), g.fixef.round(3).tolist()
    (-92.03, [-1.399, -0.992, -1.129, -1.58])
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from .core.pirls import from_design
from .design import Design, build_design
from .design.data import clean_frame
from .design.matrix import materialize
from .errors import DataError, ModelError
from .family import Family, Response, get_family
from .optimize.glmm import run_glmm_fit
from .precision import enable_compilation_cache

__all__ = ["glformula", "glm_start", "glmer", "split_offsets"]

_OFFSET = re.compile(r"\boffset\s*\(")


def split_offsets(formula: str) -> tuple[str, list[str]]:
    """Remove ``offset(expr)`` summands from the right-hand side; return them separately.

    Example:
        >>> split_offsets("y ~ x + offset(log(n)) + (1|g)")
        ('y ~ x + (1|g)', ['log(n)'])
    """
    out, exprs, pos = formula, [], 0
    while True:
        m = _OFFSET.search(out, pos)
        if m is None:
            return out, exprs
        depth, j = 1, m.end()
        while j < len(out) and depth:
            depth += {"(": 1, ")": -1}.get(out[j], 0)
            j += 1
        if depth:
            raise ModelError(f"unbalanced parentheses in offset() of {formula!r}")
        exprs.append(out[m.end() : j - 1].strip())
        before, after = out[: m.start()].rstrip(), out[j:].lstrip()
        if before.endswith("+"):
            before = before[:-1].rstrip()
        elif after.startswith("+"):
            after = after[1:].lstrip()
        elif before.endswith("~"):
            after = "1 " + after if not after else after
        out = (before + " " + after).strip() if after else before
        if out.endswith("~"):
            out += " 1"
        pos = 0


def _offset_values(exprs: list[str], data: pd.DataFrame, design: Design, offset) -> np.ndarray:
    n = design.nobs
    total = np.zeros(n)
    for e in exprs:
        cols = [c for c in data.columns if re.search(rf"\b{re.escape(str(c))}\b", e)]
        frame, _ = clean_frame(data, cols, design.rows) if cols else (data.iloc[design.rows], None)
        block = materialize(f"0 + I({e})", frame)
        if block.matrix.shape[1] != 1:
            raise DataError(f"offset({e}) does not evaluate to one numeric column")
        total += block.matrix[:, 0]
    if offset is not None:
        off = np.asarray(offset, float).reshape(-1)
        if off.shape[0] == len(data):
            off = off[design.rows]
        elif off.shape[0] != n:
            raise DataError(f"offset= has {off.shape[0]} values; the data have {len(data)} rows")
        total += off
    if not np.isfinite(total).all():
        raise DataError("the offset has non-finite values on the rows used (log of 0?)")
    return total


def _weights(weights, data: pd.DataFrame, design: Design) -> np.ndarray | None:
    if weights is None:
        return None
    if isinstance(weights, str):
        if weights not in data.columns:
            raise DataError(f"weights column {weights!r} is not in the data")
        weights = data[weights].to_numpy()
    w = np.asarray(weights, float).reshape(-1)
    if w.shape[0] == len(data):
        w = w[design.rows]
    elif w.shape[0] != design.nobs:
        raise DataError(f"weights= has {w.shape[0]} values; the data have {len(data)} rows")
    if not np.isfinite(w).all() or (w < 0).any():
        raise DataError("weights= must be finite and non-negative")
    return w


class GlmmDesign:
    """Host-side design of a GLMM (lme4's ``glFormula``): the linear-model design plus the
    family, the response set-up (weights, offsets) and the JAX arrays."""

    def __init__(self, design: Design, family: Family, resp: Response, offset_exprs: list[str],
                 offset_arg: bool = False):
        self.design = design
        self.family = family
        self.resp = resp
        self.offset_exprs = offset_exprs
        self.offset_arg = offset_arg  # whether glmer(offset=...) was given (predict needs it again)
        self.data, self.layout = from_design(design, family, resp)


def glformula(formula: str, data: pd.DataFrame, family="binomial", *, weights=None,
              offset=None) -> GlmmDesign:
    """Parse the formula and build the GLMM design on the host (lme4's ``glFormula``).

    Example:
        >>> d = glformula("TICKS ~ YEAR + (1|BROOD)", jaxmm.datasets.load("grouseticks"), "poisson")
        >>> d.layout.nlevels, d.layout.p
        ((118,), 3)
    """
    fam = get_family(family)
    text, exprs = split_offsets(formula)
    design = build_design(text, data, glmm=True)
    off = _offset_values(exprs, data, design, offset)
    resp = fam.response(design.y, _weights(weights, data, design), off, design.response)
    return GlmmDesign(design, fam, resp, exprs, offset_arg=offset is not None)


def glm_start(gd: GlmmDesign) -> np.ndarray:
    """One IRLS step of the GLM without random effects from R's starting means."""
    r, fam, X = gd.resp, gd.family, gd.design.X
    mu = fam.mustart(np.asarray(r.y), np.asarray(r.wt))
    eta = fam.link.linkfun(mu)
    d = _mu_eta_np(fam.link.name, eta)
    w = np.asarray(r.wt) * d * d / np.maximum(fam_variance(fam, mu), 1e-300)
    z = eta - np.asarray(r.offset)
    XtW = X.T * w
    try:
        return np.linalg.solve(XtW @ X, XtW @ z)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(X * np.sqrt(w)[:, None], z * np.sqrt(w), rcond=None)[0]


def _mu_eta_np(link: str, eta: np.ndarray) -> np.ndarray:
    """d mu / d eta in NumPy (no JAX dispatch for the start)."""
    if link == "logit":
        mu = 1.0 / (1.0 + np.exp(-eta))
        return mu * (1.0 - mu)
    if link == "probit":
        return np.exp(-0.5 * eta * eta) / np.sqrt(2.0 * np.pi)
    if link == "cloglog":
        return np.exp(eta - np.exp(eta))
    if link == "log":
        return np.exp(eta)
    return np.ones_like(eta)


def fam_variance(fam: Family, mu: np.ndarray) -> np.ndarray:
    return mu * (1 - mu) if fam.name == "binomial" else mu


def glmer(formula: str, data: pd.DataFrame, family="binomial", *, nagq: int = 1, weights=None,
          offset=None, start=None, maxiter: int = 500, data_name: str | None = None):
    """Fit a generalized linear mixed model (lme4's ``glmer``).

    Args:
        formula: lme4 formula; the response may be ``cbind(successes, failures)``, 0/1, a
            two-level factor (first level = 0) or a proportion with ``weights=`` trials;
            ``offset(expr)`` terms are allowed.
        data: a pandas DataFrame.
        family: ``"binomial"``, ``"poisson"`` or a Family (``jaxmm.binomial("probit")``).
        nagq: 1 Laplace (default); > 1 adaptive Gauss-Hermite points (one scalar
            random-effects term only); 0 the fast mode (beta inside PIRLS).
        weights: prior weights (array or column name).
        offset: an offset added to the linear predictor (array).
        start: starting theta (lme4's order); default every T = identity.
        maxiter: iteration limit of each optimizer stage.
        data_name: shown on the summary's ``Data:`` line.

    Example:
        >>> g = jaxmm.glmer("TICKS ~ YEAR + (1|LOCATION)", jaxmm.datasets.load("grouseticks"),
        ...                 family="poisson")
        >>> g.ngroups
        {'LOCATION': 63}
    """
    from .results.glmm import GeneralizedLinearMixedModel

    enable_compilation_cache()
    if not isinstance(nagq, (int, np.integer)) or nagq < 0:
        raise ModelError(f"nagq must be a non-negative integer, got {nagq!r}")
    gd = glformula(formula, data, family, weights=weights, offset=offset)
    lay = gd.layout
    if nagq > 1 and (len(lay.qs) != 1 or lay.qs[0] != 1):
        raise ModelError(
            f"nagq = {nagq} (adaptive Gauss-Hermite quadrature) needs a single scalar "
            "random-effects term such as (1 | g); this model has "
            + ", ".join(f"({t.label})" for t in gd.design.terms)
            + ". Use nagq=1 (Laplace).")
    if nagq > 100:
        raise ModelError(f"nagq = {nagq} is too many quadrature points; use at most 100")
    th0 = np.concatenate([np.asarray(
        [1.0 if i == j else 0.0 for i, j in zip(*_tril(q))]) for q in lay.qs])
    if start is not None:
        th0 = np.asarray(start, float).reshape(-1)
        if th0.shape != (lay.n_theta,):
            raise ModelError(f"start must have {lay.n_theta} values (theta, lme4's order)")
    beta0 = glm_start(gd)
    res, opt = run_glmm_fit(gd.data, lay, th0, beta0, nagq=int(nagq), maxiter=maxiter)
    if not np.isfinite(opt.fmin):
        raise ModelError(
            "the deviance is not finite at the estimates: PIRLS failed (complete separation, "
            "or a response the family cannot produce); check the response and the fixed effects")
    return GeneralizedLinearMixedModel(gd, res, opt, data_name=data_name)


def _tril(q: int):
    from .covariance import tril_colmajor

    return tril_colmajor(q)
