"""GLM families as lme4/R define them: deviance residuals, -2 log-likelihood (R's ``aic``),
variance, Fisher weights, and the host-side response set-up.

A family is a small frozen object; ``binomial()`` and ``poisson()`` build them with their
links (``binomial(link="probit")``). Strings name the default link: ``"binomial"``.

Example:
    >>> fam = binomial("probit")
    >>> fam.name, fam.link.name, fam.canonical
    ('binomial', 'probit', False)
    >>> get_family("poisson").link.name
    'log'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from .._lazy import lazy_module
from ..errors import DataError, ModelError
from .links import LINKS, Link

sps = lazy_module("scipy.special")  # imported on first use (0.1 s of import jaxmm)

__all__ = ["Family", "Response", "binomial", "poisson", "get_family"]

_EPS = np.finfo(float).eps


def _softplus(x):
    """log(1 + exp(x)), stable: one exp and one log1p."""
    return jnp.maximum(x, 0.0) + jnp.log1p(jnp.exp(-jnp.abs(x)))


class Response(NamedTuple):
    """The response as the JAX computations need it (a pytree; all float64 (n,)).

    Attributes:
        y: the response (a proportion for binomial).
        wt: prior weights (binomial: number of trials times the user's weights).
        offset: the offset added to the linear predictor.
        m: binomial trials as R's ``aic`` uses them (1 elsewhere).
        k: binomial successes round(m y) (y elsewhere).
        const: the part of -2 log p(y) that does not depend on mu (per observation).
        sat: the part of the deviance residual that does not depend on mu.
    """

    y: jnp.ndarray
    wt: jnp.ndarray
    offset: jnp.ndarray
    m: jnp.ndarray
    k: jnp.ndarray
    const: jnp.ndarray
    sat: jnp.ndarray


@dataclass(frozen=True)
class Family:
    """A GLM family with its link (R's ``family`` object).

    Attributes:
        name: ``"binomial"`` or ``"poisson"``.
        link: the :class:`~jaxmm.family.links.Link`.

    Example:
        >>> fam = binomial("probit")
        >>> fam
        Family: binomial  ( probit )
        >>> fam.canonical, float(fam.mu(0.0)), float(fam.variance(0.5))
        (False, 0.5, 0.25)
    """

    name: str
    link: Link

    @property
    def canonical(self) -> bool:
        """Canonical link: Fisher and observed information coincide."""
        return (self.name, self.link.name) in {("binomial", "logit"), ("poisson", "log")}

    def __repr__(self) -> str:
        return f"Family: {self.name}  ( {self.link.name} )"

    # ----- JAX, elementwise in eta --------------------------------------------------------
    def mu(self, eta):
        return self.link.linkinv(eta)

    def variance(self, mu):
        if self.name == "binomial":
            return mu * (1.0 - mu)
        return mu

    def dev_resid(self, eta, r: Response):
        """Squared deviance residuals (R's ``dev.resids``), per observation."""
        y, wt = r.y, r.wt
        if self.name == "binomial" and self.link.name == "logit":
            return r.sat + 2.0 * wt * (_softplus(eta) - y * eta)
        if self.name == "poisson" and self.link.name == "log":
            return r.sat + 2.0 * wt * (jnp.exp(eta) - y * eta)
        log_mu = self.link.log_mu(eta)
        if self.name == "binomial":
            log_1m = self.link.log_1m_mu(eta)
            return r.sat - 2.0 * wt * (y * log_mu + (1.0 - y) * log_1m)
        mu = self.link.linkinv(eta)
        return r.sat + 2.0 * wt * (mu - y * log_mu)

    def minus2loglik(self, eta, r: Response):
        """-2 log p(y | eta) per observation, R's ``family$aic`` terms (saturated constants
        included), so that summing gives what lme4's Laplace deviance uses."""
        if self.name == "binomial" and self.link.name == "logit":
            scale = jnp.where(r.m > 0, r.wt / jnp.where(r.m > 0, r.m, 1.0), 0.0)
            return 2.0 * scale * (r.m * _softplus(eta) - r.k * eta) + r.const
        log_mu = self.link.log_mu(eta)
        if self.name == "binomial":
            log_1m = self.link.log_1m_mu(eta)
            scale = jnp.where(r.m > 0, r.wt / jnp.where(r.m > 0, r.m, 1.0), 0.0)
            return -2.0 * scale * (r.k * log_mu + (r.m - r.k) * log_1m) + r.const
        mu = self.link.linkinv(eta)
        return -2.0 * r.wt * (r.y * log_mu - mu) + r.const

    def fisher_weights(self, eta, r: Response):
        """IRLS weights wt * (dmu/deta)^2 / V(mu)."""
        mu = self.link.linkinv(eta)
        d = self.link.mu_eta(eta)
        v = self.variance(mu)
        if self.name == "binomial" and self.link.name == "logit":
            return r.wt * mu * (1.0 - mu)
        if self.name == "poisson" and self.link.name == "log":
            return r.wt * mu
        return r.wt * d * d / jnp.maximum(v, 1e-300)

    # ----- host --------------------------------------------------------------------------
    def mustart(self, y: np.ndarray, wt: np.ndarray) -> np.ndarray:
        """R's starting means (``family$initialize``)."""
        if self.name == "binomial":
            return (wt * y + 0.5) / (wt + 1.0)
        return y + 0.1

    def response(self, y: np.ndarray, weights: np.ndarray | None, offset: np.ndarray,
                 what: str) -> Response:
        """Check and convert the design's response: cbind (n, 2), 0/1, or proportions."""
        n = y.shape[0]
        prior = np.ones(n) if weights is None else np.asarray(weights, float)
        if self.name == "binomial":
            if y.ndim == 2:
                if (y < 0).any():
                    raise DataError(f"the response {what!r} has negative counts")
                trials = y.sum(axis=1)
                prop = np.where(trials > 0, y[:, 0] / np.where(trials > 0, trials, 1), 0.0)
                wt, yv, n_tr = prior * trials, prop, trials
            else:
                if (y < 0).any() or (y > 1).any():
                    raise DataError(
                        f"the binomial response {what!r} must be 0/1, a two-level factor, a "
                        "proportion in [0, 1] (with weights= the trials), or "
                        "cbind(successes, failures); it has values outside [0, 1]")
                wt, yv = prior, y
                n_tr = prior if weights is not None else np.ones(n)
                if weights is None and not np.all((y == 0) | (y == 1)):
                    raise DataError(
                        f"the binomial response {what!r} has non-integer proportions but no "
                        "weights=; pass the number of trials as weights= (R: non-integer #"
                        "successes in a binomial glm)")
            m = n_tr if np.any(n_tr > 1) else wt
            k = np.round(m * yv)
            scale = np.where(m > 0, wt / np.where(m > 0, m, 1), 0.0)
            const = -2.0 * scale * (sps.gammaln(m + 1) - sps.gammaln(k + 1)
                                    - sps.gammaln(m - k + 1))
            sat = 2.0 * wt * (sps.xlogy(yv, yv) + sps.xlogy(1.0 - yv, 1.0 - yv))
            return Response(yv, wt, offset, m.astype(float), k, const, sat)
        if y.ndim == 2:
            raise DataError(f"cbind() responses are binomial; {what!r} was given to a "
                            f"{self.name} model")
        if (y < 0).any():
            raise DataError(f"the Poisson response {what!r} has negative values")
        const = 2.0 * prior * sps.gammaln(y + 1)
        sat = 2.0 * prior * (sps.xlogy(y, y) - y)
        return Response(y, prior, offset, np.ones(n), y, const, sat)


def binomial(link: str = "logit") -> Family:
    """The binomial family (links ``logit``, ``probit``, ``cloglog``).

    Example:
        >>> binomial().link.name
        'logit'
    """
    if link not in ("logit", "probit", "cloglog"):
        raise ModelError(f"binomial link {link!r} is not supported; use 'logit', 'probit' or "
                         "'cloglog'")
    return Family("binomial", LINKS[link])


def poisson(link: str = "log") -> Family:
    """The Poisson family (link ``log``).

    Example:
        >>> poisson().name
        'poisson'
    """
    if link != "log":
        raise ModelError(f"Poisson link {link!r} is not supported; use 'log'")
    return Family("poisson", LINKS[link])


def get_family(family) -> Family:
    """A :class:`Family` from a Family object or a name (``"binomial"``, ``"poisson"``)."""
    if isinstance(family, Family):
        return family
    if family in (binomial, poisson):  # R habit: family = binomial (the function itself)
        return family()
    if isinstance(family, str):
        name = family.lower()
        if name == "binomial":
            return binomial()
        if name == "poisson":
            return poisson()
        raise ModelError(f"family {family!r} is not supported; use 'binomial' or 'poisson' "
                         "(or jaxmm.binomial(link=...), jaxmm.poisson())")
    raise ModelError(f"family must be a string or a jaxmm Family, got {type(family).__name__}")
