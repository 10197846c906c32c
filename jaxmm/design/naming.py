"""Column names as R's ``model.matrix`` (and so lme4) prints them.

Built from formulaic's model structure rather than by parsing formulaic's names, so a
level containing ``:`` or ``[`` cannot confuse it: ``(Intercept)``, ``Drugb``,
``Time:Drugb``, ``gr.L``, ``temperature^4``, ``I(day^2)``, ``SideL``.

Example:
    >>> fallback_name("recipe[T.B]:temperature[.L]")
    'recipeB:temperature.L'
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from ..formula.translate import r_deparse
from .contrasts import ORDERED_KEY, poly_suffixes
from .data import r_label

__all__ = ["r_column_names", "fallback_name", "categorical_levels"]


def fallback_name(name: str) -> str:
    """Turn a formulaic column name into R's spelling, textually."""
    if name == "Intercept":
        return "(Intercept)"
    name = re.sub(r"\[T\.([^\]]*)\]", r"\1", name)
    return re.sub(r"\[([^\]]*)\]", r"\1", name)


def categorical_levels(spec: Any) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Levels and ordered flag of each categorical factor in a formulaic ``ModelSpec``."""
    from formulaic.parser.types import Factor

    out = {}
    for expr, (kind, state) in spec.encoder_state.items():
        if kind is Factor.Kind.CATEGORICAL and "categories" in state:
            levels = tuple(r_label(c) for c in state["categories"])
            out[expr] = (levels, bool(state.get(ORDERED_KEY)))
    return out


def _factor_labels(expr: str, reduced: bool, cats: dict[str, tuple[tuple[str, ...], bool]]
                   ) -> list[str]:
    base = r_deparse(expr)
    if expr not in cats:
        return [base]
    levels, ordered = cats[expr]
    if not reduced:
        suffixes = list(levels)
    elif ordered:
        suffixes = poly_suffixes(len(levels))
    else:
        suffixes = list(levels[1:])
    return [base + s for s in suffixes]


def r_column_names(spec: Any) -> list[str]:
    """R's names for the columns of a formulaic ``ModelSpec``'s model matrix.

    Columns of an interaction vary fastest in their first factor, as in R. If the
    structure holds something this does not know (a multi-column transform), the term's
    names fall back to a textual translation of formulaic's.
    """
    cats = categorical_levels(spec)
    names: list[str] = []
    for ets in spec.structure:
        term_names: list[str] = []
        for scoped in ets.scoped_terms:
            if not scoped.factors:
                term_names.append("(Intercept)")
                continue
            lists = [_factor_labels(sf.factor.expr, sf.reduced, cats) for sf in scoped.factors]
            for combo in itertools.product(*reversed(lists)):
                term_names.append(":".join(reversed(combo)))
        if len(term_names) != len(ets.columns):
            term_names = [fallback_name(c) for c in ets.columns]
        names.extend(term_names)
    return names
