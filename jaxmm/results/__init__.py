"""The fitted model and its derived quantities: fixef, ranef, varcorr, vcov, summary text."""

from .lmm import LinearMixedModel
from .varcorr import varcorr_frame

__all__ = ["LinearMixedModel", "varcorr_frame"]
