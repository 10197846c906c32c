"""The fixed-effects terms of a design: R's term labels, the columns of X each one owns
(R's ``assign``), the variables it involves and which of them are numeric — what the anova
tables and their hypotheses are built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..formula.translate import r_deparse


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part (the intercept is not a term).

    Attributes:
        label: R's term label (``Time:Drug``, ``I(day^2)``).
        columns: positions of its columns in X (after aliased columns were dropped).
        variables: the variables (R expressions) it involves.
        numeric: those of them that are numeric (covariates).
    """

    label: str
    columns: tuple[int, ...]
    variables: tuple[str, ...]
    numeric: frozenset[str]

    @property
    def order(self) -> int:
        return len(self.variables)


def spec_terms(spec: Any, keep: np.ndarray | None = None) -> tuple[bool, list[FixedTerm]]:
    """(has intercept, terms) of a formulaic ``ModelSpec``; ``keep`` lists the columns of its
    model matrix that were kept (aliased ones dropped), so term columns index the kept X."""
    if spec is None:  # the intercept-only shortcut
        return True, []
    from formulaic.parser.types import Factor

    ncol = sum(sl.stop - sl.start for sl in spec.term_slices.values())
    keep = np.arange(ncol) if keep is None else np.asarray(keep)
    new_pos = {int(old): new for new, old in enumerate(keep)}
    kinds = {expr: kind for expr, (kind, _state) in spec.encoder_state.items()}
    intercept, out = False, []
    for term, sl in spec.term_slices.items():
        if not term.factors or all(f.eval_method is Factor.EvalMethod.LITERAL for f in term.factors):
            intercept = True
            continue
        variables = tuple(r_deparse(f.expr) for f in term.factors)
        numeric = frozenset(
            r_deparse(f.expr) for f in term.factors if kinds.get(f.expr) is not Factor.Kind.CATEGORICAL
        )
        cols = tuple(new_pos[c] for c in range(sl.start, sl.stop) if c in new_pos)
        out.append(FixedTerm(":".join(variables), cols, variables, numeric))
    return intercept, out


def fixed_terms(design) -> tuple[bool, list[FixedTerm]]:
    """(has intercept, terms) of a design's fixed part, columns indexing ``design.X``.

    Example:
        >>> d = jaxmm.lformula("HR ~ baseHR + Time * Drug + (1|Patient)", jaxmm.datasets.load("HR"))
        >>> _, ts = fixed_terms(d)
        >>> [(t.label, t.columns) for t in ts]
        [('baseHR', (1,)), ('Time', (2,)), ('Drug', (3, 4)), ('Time:Drug', (5, 6))]
    """
    return spec_terms(design.spec.fixed_spec, design.spec.fixed_keep)


def contains(inner: FixedTerm, outer: FixedTerm) -> bool:
    """SAS/lmerTest containment: ``outer`` has every variable of ``inner`` and more, and
    both involve the same covariates."""
    a, b = set(inner.variables), set(outer.variables)
    return a <= b and len(b - a) > 0 and inner.numeric == outer.numeric
