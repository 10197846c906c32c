"""Link functions for GLMMs, written for numerical stability in JAX.

Each link gives the inverse link ``mu(eta)``, ``log(mu)`` and ``log(1 - mu)`` as functions of
eta (so binomial log-likelihoods never take the log of a rounded probability), and the link
itself in NumPy for starting values.

Example:
    >>> import jax.numpy as jnp
    >>> float(LINKS["logit"].linkinv(jnp.asarray(0.0)))
    0.5
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import log_ndtr, ndtr

from .._lazy import lazy_module

sps = lazy_module("scipy.special")  # imported on first use (0.1 s of import jaxmm)

__all__ = ["Link", "LINKS"]


@dataclass(frozen=True)
class Link:
    """A link function g: eta = g(mu).

    Attributes:
        name: R's name (``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``, ``"identity"``).
        linkinv: mu as a function of eta (JAX).
        log_mu: log(mu) as a function of eta (JAX, stable).
        log_1m_mu: log(1 - mu) as a function of eta (JAX, stable; binomial links only).
        linkfun: eta as a function of mu (NumPy, for starting values).
    """

    name: str
    linkinv: Callable
    log_mu: Callable
    log_1m_mu: Callable | None
    linkfun: Callable

    def mu_eta(self, eta: jnp.ndarray) -> jnp.ndarray:
        """d mu / d eta, elementwise."""
        return jax.jvp(self.linkinv, (eta,), (jnp.ones_like(eta),))[1]


def _cloglog_log_mu(eta):
    return jnp.log(-jnp.expm1(-jnp.exp(eta)))


LINKS: dict[str, Link] = {
    "logit": Link("logit", jax.nn.sigmoid, jax.nn.log_sigmoid,
                  lambda e: jax.nn.log_sigmoid(-e), lambda m: np.log(m / (1 - m))),
    "probit": Link("probit", ndtr, log_ndtr, lambda e: log_ndtr(-e),
                   lambda p: sps.ndtri(p)),
    "cloglog": Link("cloglog", lambda e: -jnp.expm1(-jnp.exp(e)), _cloglog_log_mu,
                    lambda e: -jnp.exp(e), lambda m: np.log(-np.log1p(-m))),
    "log": Link("log", jnp.exp, lambda e: e, None, np.log),
    "identity": Link("identity", lambda e: e, jnp.log, None, lambda m: m),
}
