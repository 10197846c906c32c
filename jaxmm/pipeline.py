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

import os
from collections.abc import Iterable

import pandas as pd

from .core.devfun import DevFun
from .design import Design, build_design
from .design.crossprod import MAX_DENSE, check_dense_size, crossproducts
from .design.sources import is_streamable
from .design.stream import stream_design
from .errors import ModelError
from .optimize.float32 import float32_theta
from .optimize.lmm import default_theta0, run_fit
from .optimize.start import moment_start, moment_start_blocks
from .precision import enable_compilation_cache
from .results.lmm import LinearMixedModel


def lformula(formula: str, data: pd.DataFrame) -> Design:
    """Parse the formula and build the design on the host (lme4's ``lFormula``).

    Example:
        >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> d.X.shape, d.x_names, [t.group for t in d.terms]
        ((180, 2), ('(Intercept)', 'Days'), ['Subject'])
    """
    return build_design(formula, data)


def intercept_column(x_names) -> int | None:
    """Index of ``(Intercept)`` among the fixed-effect columns, or None."""
    return x_names.index("(Intercept)") if "(Intercept)" in x_names else None


def mk_devfun(design: Design, reml: bool = True) -> DevFun:
    """Crossproduct blocks and the jit-compiled criterion of theta (lme4's ``mkLmerDevfun``).

    Example:
        >>> d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> f = jaxmm.mk_devfun(d, reml=True)
        >>> round(f([0.9667329, 0.01516904, 0.23090962]), 3)   # at lmer's estimate of theta
        1743.628
    """
    check_dense_size(design.terms, design.X.shape[1], MAX_DENSE)
    layout, blocks = crossproducts(design.y, design.X, design.terms)
    return DevFun.from_numpy(layout, blocks, reml, intercept_column(design.x_names))


def lmer(
    formula: str,
    data: pd.DataFrame | str | os.PathLike | Iterable[pd.DataFrame],
    reml: bool = True,
    *,
    start=None,
    maxiter: int = 1000,
    data_name: str | None = None,
    dtype: str = "float64",
) -> LinearMixedModel:
    """Fit a linear mixed model with lme4's formula language.

    Args:
        formula: an lme4 formula, e.g. ``"Reaction ~ Days + (Days|Subject)"``.
        data: a pandas DataFrame (factors as Categorical keep their level order); or, for
            data larger than memory, a Parquet file or directory (needs pyarrow), a list
            of DataFrame chunks, a function returning an iterable of chunks, or an
            iterator of chunks: the crossproducts are then streamed chunk by chunk
            (:mod:`jaxmm.design.stream` says what a streamed fit cannot give).
        reml: REML (default) or maximum likelihood.
        start: starting theta in lme4's order; default: a moment estimate from the spread
            of least-squares residuals between levels (``"lme4"``: every T = identity).
        maxiter: iteration limit of the optimizer.
        data_name: shown on the summary's ``Data:`` line.
        dtype: ``"float64"`` (default), or ``"float32"``: find theta in single precision on
            centered data (fast on consumer GPUs), then polish and report in float64
            (:mod:`jaxmm.optimize.float32`).

    Example:
        >>> import jaxmm
        >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
        >>> round(m.reml_criterion, 2), m.ngroups
        (1743.63, {'Subject': 18})
    """
    enable_compilation_cache()
    if dtype not in ("float64", "float32"):
        raise ModelError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    if is_streamable(data):
        design, layout, blocks = stream_design(formula, data)
        devfun = DevFun.from_numpy(layout, blocks, reml, intercept_column(design.x_names))
        if start is None:
            start = moment_start_blocks(layout, blocks, design.terms[0].nlevels)
    else:
        design = lformula(formula, data)
        devfun = mk_devfun(design, reml)
    if start is None:
        start = moment_start(design.y, design.X, design.terms)
    elif isinstance(start, str) and start == "lme4":
        start = None
    if dtype == "float32":
        th0 = default_theta0(devfun.layout) if start is None else start
        start = float32_theta(devfun, th0, devfun.icpt, maxiter=maxiter)
    res, opt = run_fit(devfun, start, maxiter=maxiter)
    return LinearMixedModel(design, devfun, opt, estimates=res.estimates, data_name=data_name)
