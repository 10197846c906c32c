"""Modules imported on first use: ``scipy.stats`` alone costs ~0.5 s of ``import jaxmm``,
and a fit needs it only for p-values and quantiles.

Example:
    >>> stats = lazy_module("scipy.stats")
    >>> round(float(stats.norm.ppf(0.975)), 2)
    1.96
"""

from __future__ import annotations

import importlib
from types import ModuleType


class _Lazy(ModuleType):
    def __getattr__(self, attr: str):
        mod = importlib.import_module(self.__name__)
        self.__dict__.update(mod.__dict__)
        return getattr(mod, attr)


def lazy_module(name: str) -> ModuleType:
    """A stand-in for module ``name`` that imports it at the first attribute access.

    Example:
        >>> special = lazy_module("scipy.special")
        >>> float(special.expit(0.0))
        0.5
    """
    return _Lazy(name)
