"""Differentiable mixed models: the likelihood as a JAX building block (issue 6).
"""
from .design import MixedDesign, from_design, model
from .likelihood import Conditional, conditional_modes, lambda_u, log_joint, loglik, objective, z_times
from .implicit import FitEstimates, fit
