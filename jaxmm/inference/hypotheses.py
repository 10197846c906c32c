"""Contrast matrices L (one per fixed-effects term) for type I and type III F tests, defined
as lmerTest defines them so the tables agree with lmerTest's ``anova``.

- Type I (sequential): rows of the unit upper-triangular factor of X'X (Doolittle), so each
  term is tested after the terms before it.
- Type III: SAS's definition through containment. With treatment coding, the hypothesis
  matrix maps the over-parameterized ("complete") design onto the coefficients; the columns of
  a term contained in others are orthogonalized against those others; the resulting hypotheses
  are mapped to the coding actually used (polynomial contrasts for ordered factors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.matrix import materialize
from ..design.rank import independent_columns
from ..formula.translate import r_deparse
from .terms import FixedTerm, contains, fixed_terms, spec_terms

ZAP = 1e-8


def _zap(A: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's zapsmall: round relative to the largest magnitude."""
    mx = np.max(np.abs(A)) if A.size else 0.0
    if mx == 0.0:
        return A
    return np.round(A, max(0, digits - int(np.ceil(np.log10(mx)))))


def _nonzero_rows(L: np.ndarray) -> np.ndarray:
    return L[np.sum(np.abs(L), axis=1) > ZAP]


def type1(X: np.ndarray, terms: list[FixedTerm]) -> dict[str, np.ndarray]:
    """Sequential hypotheses: the rows of each term in the unit upper-triangular factor U of
    X'X = U' D U (lmerTest's ``doolittle``).

    Example:
        >>> d = jaxmm.lformula("HR ~ baseHR + Time * Drug + (1|Patient)", jaxmm.datasets.load("HR"))
        >>> _, ts = fixed_terms(d)
        >>> {k: v.shape for k, v in type1(d.X, ts).items()}
        {'baseHR': (1, 7), 'Time': (1, 7), 'Drug': (2, 7), 'Time:Drug': (2, 7)}
    """
    p = X.shape[1]
    if p == 1:
        U = np.ones((1, 1))
    else:
        C = np.linalg.cholesky(X.T @ X)
        U = (C / np.diag(C)).T
        U[np.abs(U) < 1e-6] = 0.0
    return {t.label: U[list(t.columns)] for t in terms}


def _treatment_frame(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for c in out.columns:
        if isinstance(out[c].dtype, pd.CategoricalDtype) and out[c].cat.ordered:
            out[c] = out[c].cat.as_unordered()
    return out


def type3(design) -> dict[str, np.ndarray]:
    """Type III hypotheses, lmerTest's ``get_contrasts_type3``.

    Example:
        >>> d = jaxmm.lformula("HR ~ baseHR + Time * Drug + (1|Patient)", jaxmm.datasets.load("HR"))
        >>> L = type3(d)
        >>> L["Drug"].round(3).tolist()
        [[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]]
    """
    has_int, terms = fixed_terms(design)
    X = design.X
    if X.shape[1] <= 1 or len(terms) <= 1:
        return type1(X, terms)
    frame = design.fixed_frame
    if frame is None:
        raise ValueError("the design holds no data frame: type III hypotheses need it")
    tframe = _treatment_frame(frame)
    rhs = design.formula.fixed
    trt = materialize(rhs, tframe)
    keep = independent_columns(trt.matrix)
    Xt = trt.matrix[:, keep]
    names_t = [nm for nm, k in zip(trt.names, keep) if k]
    _, terms_t = spec_terms(trt.spec, np.flatnonzero(keep))
    cols_t = {t.label: list(t.columns) for t in terms_t}

    # the complete (over-parameterized) design, one block of indicator columns per term
    blocks, names_rd = [], []
    if has_int:
        blocks.append(np.ones((X.shape[0], 1)))
        names_rd.append("(Intercept)")
    for t in terms_t:
        b = materialize("0 + " + _formulaic_term(trt.spec, t), tframe)
        blocks.append(b.matrix)
        names_rd.extend(b.names)
    rdX = np.concatenate(blocks, axis=1)
    pinv = np.linalg.pinv(Xt)
    L = _zap((pinv @ rdX).T)  # rows: complete-design columns, columns: coefficients

    by_label = {t.label: t for t in terms_t}
    for t in sorted(terms_t, key=lambda t: -t.order):  # higher order first (stable)
        outer = [o for o in terms_t if contains(t, o)]
        if not outer:
            continue
        A = L[:, [c for o in outer for c in cols_t[o.label]]]
        B = L[:, cols_t[t.label]]
        coef, *_ = np.linalg.lstsq(A, B, rcond=None)
        L[:, cols_t[t.label]] = _zap(B - A @ coef)
    row_of = {nm: i for i, nm in enumerate(names_rd)}
    missing = [nm for nm in names_t if nm not in row_of]
    if missing:
        raise ValueError(f"cannot match coefficients {missing} to the complete design")
    L = L[[row_of[nm] for nm in names_t]]  # p_t x p_t
    mapping = _zap(pinv @ X)  # treatment coefficients -> the coefficients actually used
    out = {}
    for t in terms:
        lt = by_label.get(t.label)
        if lt is None:
            continue
        out[t.label] = _nonzero_rows(L[:, cols_t[lt.label]].T @ mapping)
    return out


def _formulaic_term(spec, term: FixedTerm) -> str:
    """The formulaic spelling of one term of ``spec`` (matched by R label)."""
    for t in spec.term_slices:
        if ":".join(r_deparse(f.expr) for f in t.factors) == term.label:
            return str(t)
    raise KeyError(term.label)


def marginal(terms: list[FixedTerm], p: int) -> dict[str, np.ndarray]:
    """Each term's coefficients tested jointly (rows of the identity)."""
    eye = np.eye(p)
    return {t.label: eye[list(t.columns)] for t in terms}
