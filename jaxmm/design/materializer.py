"""A formulaic materializer that codes factors the way R's ``model.matrix`` does.

Two differences from formulaic's pandas materializer:

* Logical values (``I(x > 4)``) are factors, as R's ``model.frame`` makes them.
* **Ordered** factors (ordered ``pd.Categorical``) get ``contr.poly`` (R's default
  ``contrasts = c("contr.treatment", "contr.poly")``); unordered ones ``contr.treatment``.
* Which factors of a term are coded by contrasts and which by full dummy columns follows
  R's ``TermCode`` rule rather than formulaic's span-based one: a factor F in term T is
  coded by contrasts iff T without F is empty or is contained in an earlier term; without
  an intercept, the first factor of the first term holding a factor gets dummies.
  Factors inside each term are ordered as the variables first appear in the formula, as
  R orders them. The two rules agree whenever main effects accompany their interactions;
  for ``~ a:b`` R (and lme4) give a rank-deficient matrix whose aliased column is then
  dropped, and so does jaxmm.

Example:
    >>> import pandas as pd, formulaic
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4], "g": pd.Categorical(list("abab"))})
    >>> mm = formulaic.model_matrix("1 + g", df, materializer=RMaterializer)
    >>> list(mm.columns)
    ['Intercept', 'g[T.b]']
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Generator, Hashable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from formulaic.materializers.pandas import PandasMaterializer
from formulaic.materializers.types import ScopedFactor, ScopedTerm
from formulaic.parser.types import Factor, Term
from formulaic.transforms import encode_contrasts
from formulaic.transforms.contrasts import PolyContrasts, TreatmentContrasts
from formulaic.utils.cast import as_columns
from formulaic.utils.null_handling import drop_rows as drop_nulls
from interface_meta import override

from ..errors import DataError
from .contrasts import ORDERED_KEY, contr_poly

__all__ = ["RMaterializer", "ORDERED_KEY", "RPolyContrasts", "RTreatmentContrasts"]


class RPolyContrasts(PolyContrasts):
    """formulaic's polynomial contrasts with R's exact ``contr.poly`` matrix."""

    @override
    def _get_coding_matrix(  # type: ignore[override]
        self, levels: Sequence[Hashable], reduced_rank: bool = True, sparse: bool = False
    ) -> np.ndarray:
        n = len(levels)
        if not reduced_rank or n < 2:
            return super()._get_coding_matrix(levels, reduced_rank=reduced_rank, sparse=sparse)
        mat = contr_poly(n)
        if sparse:
            import scipy.sparse as sp

            return sp.csc_matrix(mat)
        return mat


RTreatmentContrasts = TreatmentContrasts  # first level is the reference, as R's default


def _check_known_levels(values: Any, metadata: Any, encoder_state: dict[str, Any]) -> None:
    """On new data, a factor's values must be among the levels seen when fitting (formulaic
    would silently code an unseen value as the reference level)."""
    known = encoder_state.get("categories")
    if known is None:
        return
    cats = getattr(getattr(values, "dtype", None), "categories", None)
    if cats is not None and set(cats.tolist()) <= set(known):
        return  # a Categorical whose levels are all known (the usual case: cleaned data)
    try:
        seen = pd.unique(pd.Series(np.asarray(values, dtype=object).ravel()).dropna())
    except Exception:  # pragma: no cover - values formulaic cannot expose as an array
        return
    known_set = set(known)
    unknown = [v for v in seen if v not in known_set]
    if unknown:
        name = getattr(metadata, "name", None) or "a factor"
        raise DataError(
            f"{name!r} has value{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(map(repr, unknown[:5]))} not seen when the model was fitted "
            f"(known: {', '.join(map(str, list(known)[:10]))})"
        )


class RMaterializer(PandasMaterializer):
    """Pandas materializer with R's contrasts and term coding (see module docstring).

    Parameters (passed as materializer params, kept in the ``ModelSpec``):
        variable_order: factor expressions in order of first appearance in the formula.
    """

    REGISTER_NAME = "jaxmm_r"
    REGISTER_INPUTS: Sequence[str] = ()  # only used when asked for by name
    REGISTER_OUTPUTS: Sequence[str] = ("pandas", "numpy")
    REGISTER_PRECEDENCE = -1

    @override
    def _is_categorical(self, values: Any) -> bool:
        # R turns logical variables (also computed ones, like I(x > 4)) into factors
        dtype = getattr(values, "dtype", None)
        if dtype is not None and pd.api.types.is_bool_dtype(dtype):
            return True
        return super()._is_categorical(values)

    @override
    def _encode_categorical(
        self,
        values: Any,
        metadata: Any,
        encoder_state: dict[str, Any],
        spec: Any,
        drop_rows: Sequence[int],
        reduced_rank: bool = False,
    ) -> Any:
        _check_known_levels(values, metadata, encoder_state)
        ordered = encoder_state.get(ORDERED_KEY)
        if ordered is None:
            dtype = getattr(values, "dtype", None)
            ordered = bool(isinstance(dtype, pd.CategoricalDtype) and dtype.ordered)
            encoder_state[ORDERED_KEY] = ordered
        if not ordered:
            return super()._encode_categorical(
                values, metadata, encoder_state, spec, drop_rows, reduced_rank=reduced_rank
            )
        if drop_rows:
            values = drop_nulls(values, indices=drop_rows)
        return as_columns(
            encode_contrasts(
                values,
                contrasts=RPolyContrasts(),
                reduced_rank=reduced_rank,
                _metadata=metadata,
                _state=encoder_state,
                _spec=spec,
            )
        )

    @override
    def _get_scoped_terms(
        self, terms: Iterable[Term], ensure_full_rank: bool = True
    ) -> Generator[tuple[Term, Iterable[ScopedTerm]], None, None]:
        terms = list(terms)
        order = {v: i for i, v in enumerate(self.params.get("variable_order", ()))}
        kinds = Factor.Kind

        def evaled(term: Term) -> list[Any]:
            out = [self.factor_cache[f.expr] for f in term.factors]
            return [ef for ef in out if ef.values.__wrapped__ is not None]

        def is_const(ef: Any) -> bool:
            return ef.metadata.kind is kinds.CONSTANT

        intercept = any(all(is_const(ef) for ef in evaled(t)) and evaled(t) for t in terms)
        dummy_pending = not intercept
        previous: list[frozenset[str]] = []
        for term in terms:
            factors = evaled(term)
            if not factors:
                yield term, []
                continue
            scale = functools.reduce(operator.mul, [ef.values for ef in factors if is_const(ef)], 1)
            variables = sorted((ef for ef in factors if not is_const(ef)),
                               key=lambda ef: order.get(ef.expr, len(order)))
            names = frozenset(ef.expr for ef in variables)
            reduced = []
            for ef in variables:
                if ef.metadata.kind is kinds.CATEGORICAL:
                    rest = names - {ef.expr}
                    reduced.append(not rest or any(rest <= p for p in previous))
                else:
                    reduced.append(False)
            if dummy_pending:
                cats = [i for i, ef in enumerate(variables) if ef.metadata.kind is kinds.CATEGORICAL]
                if cats:
                    reduced[cats[0]] = False
                    dummy_pending = False
            previous.append(names)
            scoped = [ScopedFactor(ef, reduced=r) for ef, r in zip(variables, reduced)]
            yield term, [ScopedTerm(factors=scoped, scale=scale)]
