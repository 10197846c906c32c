"""Predictions from a fitted linear mixed model (lme4's ``predict.merMod``), host NumPy.

``re_form=None`` includes every random-effects term (the conditional modes); ``"~0"`` gives
the population-level prediction X beta; a formula such as ``"~(1|Subject)"`` keeps only the
terms it names. On new data, X and the terms' columns are rebuilt with the fit's contrasts
and transforms (``Design.spec``); a level not seen in fitting is an error unless
``allow_new_levels=True``, when its random effects are zero (as lme4).

Example:
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> import pandas as pd
    >>> new = pd.DataFrame({"Days": [0, 5], "Subject": ["308", "new"]})
    >>> predict(m, new, allow_new_levels=True).round(2).tolist()
    [253.66, 303.74]
    >>> predict(m, new, re_form="~0").round(2).tolist()
    [251.41, 303.74]
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError
from ..formula import parse_formula


def _lhs_key(lhs: str) -> frozenset[str]:
    parts = {p.strip() for p in lhs.replace(" ", "").split("+") if p.strip()}
    if not parts & {"0", "-1"}:
        parts.add("1")
    return frozenset(parts - {"-1"} | ({"0"} if "-1" in parts else set()))


def _is_population(re_form) -> bool:
    if re_form is None:
        return False
    if isinstance(re_form, float) and math.isnan(re_form):  # lme4's re.form = NA
        return True
    if not isinstance(re_form, str):
        raise ModelError(f"re_form must be None, '~0' or a formula string, got {re_form!r}")
    return re_form.replace(" ", "") in ("~0", "~-1", "0", "NA")


def terms_kept(model, re_form) -> list[bool]:
    """Which of the model's random-effects terms (layout order) ``re_form`` keeps."""
    nterms = len(model.terms)
    if re_form is None:
        return [True] * nterms
    if _is_population(re_form):
        return [False] * nterms
    text = re_form.strip()
    if not text.startswith("~"):
        raise ModelError(f"re_form must be a one-sided formula such as '~(1|g)', got {re_form!r}")
    try:
        parsed = parse_formula("jaxmm_dummy_ " + text)
    except FormulaError as e:
        raise ModelError(f"re_form {re_form!r} is not a valid formula: {e}") from None
    keep = [False] * nterms
    for rt in parsed.random:
        hits = [k for k, t in enumerate(model.terms)
                if t.group == rt.group and _lhs_key(t.lhs) == _lhs_key(rt.lhs)]
        if not hits:
            have = ", ".join(f"({t.label})" for t in model.terms)
            raise ModelError(f"re_form term ({rt.label}) is not a random-effects term of the "
                             f"model; its terms are {have}")
        for k in hits:
            keep[k] = True
    return keep


def predict(model, newdata: pd.DataFrame | None = None, re_form=None,
            allow_new_levels: bool = False) -> np.ndarray:
    """Predicted responses (the linear predictor) for ``newdata`` (default: the rows used in
    fitting, i.e. ``fitted()`` for ``re_form=None``)."""
    keep = terms_kept(model, re_form)
    beta = model.fixef.to_numpy()
    if newdata is None:
        eta = model.design.X @ beta
        mats = [(t.index, t.Xt) for t in model.terms]
    else:
        eta = model.design.spec.fixed_matrix(newdata) @ beta
        mats = []
        if any(keep):  # only the terms kept must know every level
            mats = model.design.spec.term_matrices(newdata, allow_new_levels=True)
            for k, (idx, _) in enumerate(mats):
                new = np.asarray(idx) < 0
                if keep[k] and new.any() and not allow_new_levels:
                    t = model.terms[k]
                    cols = list(t.group_factors) or [t.group]
                    vals = newdata.loc[new, cols].astype(str).agg(":".join, axis=1).unique()[:5]
                    raise DataError(
                        f"new data have levels of {t.group!r} not seen in fitting "
                        f"({', '.join(map(repr, vals))}); pass allow_new_levels=True to "
                        "predict them with zero random effects, or re_form='~0'")
    for k, (idx, Xt) in enumerate(mats):
        if not keep[k]:
            continue
        b = model._modes[k]
        idx = np.asarray(idx)
        known = idx >= 0
        contrib = np.zeros(eta.shape[0])
        contrib[known] = np.einsum("ic,ic->i", np.asarray(Xt)[known], b[idx[known]])
        eta = eta + contrib
    return np.asarray(eta, dtype=np.float64)
