"""``lmer`` and its stages, as lme4 splits them: lFormula -> mkLmerDevfun -> optimizeLmer
-> mkMerMod. Each stage returns plain data and is usable on its own.

Example:
    >>> import jaxmm
    >>> sleep = jaxmm.datasets.load("sleepstudy")
    >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", sleep)   # design (host)
    >>> f = jaxmm.mk_devfun(d, reml=True)                                # objective (JAX)
    >>> opt = jaxmm.optimize_lmm(f)                                      # optimizer
    >>> m = jaxmm.LinearMixedModel(d, f, opt)                            # results
    >>> round(m.reml_criterion, 3)
    1743.628
"""

from __future__ import annotations

import pandas as pd

from .core.devfun import DevFun
from .design import Design, build_design
from .design.crossprod import crossproducts, rest_size
from .errors import ModelError
from .optimize.lmm import run_fit
from .optimize.start import moment_start
from .precision import enable_compilation_cache
from .results.lmm import LinearMixedModel

#: Largest dense rest block (rows) jaxmm will build: 8 bytes * r^2 must fit in memory.
MAX_DENSE = 20_000


def lformula(formula: str, data: pd.DataFrame) -> Design:
    """Parse the formula and build the design on the host (lme4's ``lFormula``).

    Example:
        >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> d.X.shape, d.x_names, [t.group for t in d.terms]
        ((180, 2), ('(Intercept)', 'Days'), ['Subject'])
    """
    return build_design(formula, data)


def mk_devfun(design: Design, reml: bool = True) -> DevFun:
    """Crossproduct blocks and the jit-compiled criterion of theta (lme4's ``mkLmerDevfun``).

    Example:
        >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> f = jaxmm.mk_devfun(d, reml=True)
        >>> round(f([0.9667329, 0.01516904, 0.23090962]), 3)   # at lmer's estimate of theta
        1743.628
    """
    p = design.X.shape[1]
    r = rest_size(design.terms, p)
    if r > MAX_DENSE:
        sizes = ", ".join(f"{t.group}: {t.nlevels} levels x {t.q}" for t in design.terms)
        raise ModelError(
            f"the random-effects terms after the first ({sizes}) need a dense block of "
            f"{r} x {r} ({8 * r * r / 2**30:.1f} GiB) after eliminating the largest term; "
            f"jaxmm refuses blocks over {MAX_DENSE} rows. Nest the smaller factor, drop a "
            "term, or fit the crossed factors with fewer levels."
        )
    layout, blocks = crossproducts(design.y, design.X, design.terms)
    return DevFun.from_numpy(layout, blocks, reml)


def lmer(
    formula: str,
    data: pd.DataFrame,
    reml: bool = True,
    *,
    start=None,
    maxiter: int = 1000,
    data_name: str | None = None,
) -> LinearMixedModel:
    """Fit a linear mixed model with lme4's formula language.

    Args:
        formula: an lme4 formula, e.g. ``"Reaction ~ Days + (Days|Subject)"``.
        data: a pandas DataFrame (factors as Categorical keep their level order).
        reml: REML (default) or maximum likelihood.
        start: starting theta in lme4's order; default: a moment estimate from the spread
            of least-squares residuals between levels (``"lme4"``: every T = identity).
        maxiter: iteration limit of the optimizer.
        data_name: shown on the summary's ``Data:`` line.

    Example:
        >>> import jaxmm
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> round(m.reml_criterion, 2), m.ngroups
        (1743.63, {'Subject': 18})
    """
    enable_compilation_cache()
    design = lformula(formula, data)
    devfun = mk_devfun(design, reml)
    if start is None:
        start = moment_start(design.y, design.X, design.terms)
    elif isinstance(start, str) and start == "lme4":
        start = None
    res, opt = run_fit(devfun, start, maxiter=maxiter)
    return LinearMixedModel(design, devfun, opt, estimates=res.estimates, data_name=data_name)
