"""The doctest namespace of the package's docstrings.

Every doctest sees ``jaxmm``. Docstrings of the fitted-model methods also use two fits,
built once per session and only when a doctest reads them (a doctest that assigns its own
``m`` or ``g`` does not trigger the fit):

    m   jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)        (REML)
    g   jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp,
                    family="binomial")                                    (Laplace)
"""

import re
import warnings
from functools import lru_cache

import pytest


@lru_cache(maxsize=None)
def _fit_m():
    import jaxmm

    return jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))


@lru_cache(maxsize=None)
def _fit_g():
    import jaxmm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                           jaxmm.datasets.load("cbpp"), family="binomial")


_SHARED_FITS = {"m": _fit_m, "g": _fit_g}


def _reads_free_name(sources: list[str], name: str) -> bool:
    """Whether the doctest uses ``name`` without assigning it first."""
    used = re.compile(rf"(?<![\w.]){name}\b(?!\s*=[^=])")
    assigned = re.compile(rf"^\s*(?:{name}\s*=[^=]|for\s+{name}\b)")
    for src in sources:
        if assigned.search(src):
            return False
        if used.search(src):
            return True
    return False


@pytest.fixture(autouse=True)
def _doctest_namespace(request, doctest_namespace):
    import jaxmm

    doctest_namespace["jaxmm"] = jaxmm
    dtest = getattr(request.node, "dtest", None)  # only doctest items have one
    if dtest is None:
        return
    sources = [ex.source for ex in dtest.examples]
    for name, build in _SHARED_FITS.items():
        if _reads_free_name(sources, name):
            doctest_namespace[name] = build()
