"""Argument checks shared by the functions that need a particular kind of fitted model."""

from __future__ import annotations

from ..errors import ModelError


def require_lmm(fit, what: str) -> None:
    """Raise ``ModelError`` unless ``fit`` is a :class:`LinearMixedModel`.

    Example:
        >>> require_lmm(m, "anova")            # a linear mixed model: nothing happens
        >>> require_lmm("a string", "anova")
        Traceback (most recent call last):
        ...
        jaxmm.errors.ModelError: anova needs a linear mixed model fitted with jaxmm.lmer; got str
    """
    from .lmm import LinearMixedModel

    if isinstance(fit, LinearMixedModel):
        return
    kind = type(fit).__name__
    hint = ""
    if hasattr(fit, "family"):
        hint = (" (for a GLMM: summary(), coef_table(), jaxmm.anova(g0, g1) for likelihood-ratio "
                "tests, predict(), simulate())")
    raise ModelError(f"{what} needs a linear mixed model fitted with jaxmm.lmer; got {kind}{hint}")
