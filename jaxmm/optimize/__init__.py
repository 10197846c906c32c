"""Optimizers for the profiled criterion: ``minimize(fun, x0) -> Solution``."""

from .lbfgs import STATUS_MESSAGES, Solution, minimize

__all__ = ["minimize", "Solution", "STATUS_MESSAGES"]
