"""Build a mixed model's design on the host, once: response, fixed-effects matrix (R's
contrasts and column names) and, per random-effects term, level indices and the term's
own model matrix. Nothing of size n x q_total is ever formed.

Example:
    >>> from jaxmm import datasets
    >>> from jaxmm.design import build_design
    >>> d = build_design("math ~ gr + sx + eth + cltype + (yrs | id) + (yrs | sch)",
    ...                  datasets.load("star"))
    >>> d.nobs, d.n_dropped_rows, d.x_names[:4]
    (24578, 2218, ('(Intercept)', 'gr.L', 'gr.Q', 'gr.C'))
"""

from __future__ import annotations

from .build import Design, build_design
from .contrasts import Contrast, contr_poly, contr_treatment
from .random import TermDesign
from .spec import DesignSpec, TermSpec

__all__ = [
    "build_design",
    "Design",
    "TermDesign",
    "DesignSpec",
    "TermSpec",
    "Contrast",
    "contr_poly",
    "contr_treatment",
]
