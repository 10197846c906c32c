"""jaxmm: linear mixed models with lme4's formula language on a jit-compiled, differentiable
JAX objective.

The pipeline, one package per stage:

    formula/    lme4's formula language             parse_formula
    design/     host (NumPy) design, crossproducts  lformula / build_design
    covariance/ theta <-> relative factor T         Unstructured
    core/       pure JAX profiled criterion          objective, DevFun (mk_devfun)
    optimize/   BFGS fit of theta + checks           optimize_lmm
    results/    the fitted model                     LinearMixedModel
    inference/  F tests (Satterthwaite, KR), LRT, CIs  anova, fit.confint
    datasets/   lme4's data sets                     datasets.load

Example:
    >>> import jaxmm
    >>> m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    >>> m.ngroups
    {'Subject': 18}
"""

from __future__ import annotations

from . import datasets, functional
from .core.devfun import DevFun
from .core.objective import objective
from .errors import (
    ColumnNotFoundError,
    ConvergenceError,
    ConvergenceWarning,
    DataError,
    FormulaError,
    JaxmmError,
    JaxmmWarning,
    ModelError,
    RankDeficiencyWarning,
    SingularFitWarning,
)
from .formula import parse_formula
from .inference import anova
from .pipeline import lformula, lmer, mk_devfun
from .family import Family, binomial, poisson
from .glmm_pipeline import glformula, glmer
from .results.glmm import GeneralizedLinearMixedModel
from .optimize.lmm import OptSummary, optimize_lmm
from .optimize.start import moment_start
from .precision import x64
from .results.lmm import LinearMixedModel
from .results.persist import load
from .batch import lmer_many

__version__ = "0.1.0"

__all__ = [
    "lmer",
    "glmer",
    "glformula",
    "GeneralizedLinearMixedModel",
    "Family",
    "binomial",
    "poisson",
    "anova",
    "load",
    "lmer_many",
    "lformula",
    "mk_devfun",
    "optimize_lmm",
    "moment_start",
    "LinearMixedModel",
    "DevFun",
    "OptSummary",
    "objective",
    "parse_formula",
    "datasets",
    "functional",
    "x64",
    "JaxmmError",
    "FormulaError",
    "DataError",
    "ColumnNotFoundError",
    "ModelError",
    "ConvergenceError",
    "JaxmmWarning",
    "ConvergenceWarning",
    "SingularFitWarning",
    "RankDeficiencyWarning",
]
