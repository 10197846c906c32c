"""Batched fitting: simulation, parametric bootstrap and many responses on one design."""

from .bootstrap import Bootstrap, bootstrap
from .many import ManyFits, lmer_many, refit_many
from .simulate import simulate

__all__ = ["Bootstrap", "bootstrap", "ManyFits", "lmer_many", "refit_many", "simulate"]
