"""lme4's formula language: parse ``y ~ x + (x | g)`` into its parts.

Example:
    >>> from jaxmm.formula import parse_formula
    >>> f = parse_formula("Reaction ~ Days + (Days || Subject)")
    >>> [t.lhs for t in f.random]
    ['1', '0 + Days']
"""

from __future__ import annotations

from .expand import expand_bar, parse_group
from .parse import parse_formula
from .terms import ParsedFormula, RandomTerm
from .translate import r_deparse, to_formulaic

__all__ = [
    "parse_formula",
    "ParsedFormula",
    "RandomTerm",
    "expand_bar",
    "parse_group",
    "r_deparse",
    "to_formulaic",
]
