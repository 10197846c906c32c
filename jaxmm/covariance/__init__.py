"""Covariance structures of random-effects terms: theta <-> relative factor T <-> VarCorr."""

from .unstructured import Unstructured, tril_colmajor

__all__ = ["Unstructured", "tril_colmajor"]
