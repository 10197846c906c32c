"""GLM families and links for :func:`jaxmm.glmer`."""

from .families import Family, Response, binomial, get_family, poisson
from .links import LINKS, Link

__all__ = ["Family", "Response", "binomial", "poisson", "get_family", "Link", "LINKS"]
