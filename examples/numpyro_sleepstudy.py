"""NumPyro's NUTS on the sleepstudy log joint density, compared with the REML fit.

``jaxmm.functional.log_joint`` is log p(y, u | beta, theta, sigma) with lme4's spherical
random effects u ~ N(0, sigma^2 I) and b = Lambda(theta) u. Its prior on u does not involve
theta, so sampling (beta, theta, sigma, u) directly has no funnel as theta -> 0. The NumPyro
model puts weak priors on beta, theta (diagonal of the relative factor T positive) and
sigma, a flat base measure on u, and adds the log joint as a factor. NUTS starts from the
REML estimates; the posterior means are printed next to them (they agree within Monte Carlo
and posterior spread: the priors are weak, the posterior of the variance parameters is
skewed, so their means sit above the REML modes).

Requires numpyro (``pip install jaxmm[numpyro]``).

Usage:
    python examples/numpyro_sleepstudy.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxmm
from jaxmm import functional as F
from jaxmm.precision import compute

FORMULA = "Reaction ~ Days + (Days|Subject)"


def sample(num_warmup: int = 500, num_samples: int = 1000, seed: int = 0) -> dict:
    """REML estimates and NUTS posterior draws of (beta, theta, sigma)."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS, init_to_value

    d = F.model(FORMULA, jaxmm.datasets.load("sleepstudy"))
    p, q = len(d.x_names), d.n_u

    def model():
        beta = numpyro.sample("beta", dist.Normal(0.0, 1e3).expand([p]).to_event(1))
        t_diag = numpyro.sample("t_diag", dist.HalfNormal(5.0).expand([2]).to_event(1))
        t_off = numpyro.sample("t_off", dist.Normal(0.0, 5.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(200.0))
        u = numpyro.sample("u", dist.ImproperUniform(dist.constraints.real, (), (q,)))
        theta = jnp.stack([t_diag[0], t_off, t_diag[1]])  # lme4's order: T11, T21, T22
        numpyro.deterministic("theta", theta)
        numpyro.factor("log_joint", F.log_joint(beta, theta, sigma, u, d))

    with compute():
        est = jax.jit(F.fit)(d)
        c = F.conditional_modes(est.theta, d)
        start = dict(
            beta=est.beta, t_diag=est.theta[jnp.array([0, 2])], t_off=est.theta[1],
            sigma=est.sigma, u=c.u,
        )
        mcmc = MCMC(
            NUTS(model, init_strategy=init_to_value(values=start)),
            num_warmup=num_warmup, num_samples=num_samples, progress_bar=False,
        )
        mcmc.run(jax.random.PRNGKey(seed))
        draws = {k: np.asarray(v) for k, v in mcmc.get_samples().items()}
    reml = dict(beta=np.asarray(est.beta), theta=np.asarray(est.theta), sigma=float(est.sigma))
    return dict(reml=reml, draws=draws, names=d.x_names)


def main() -> None:
    t0 = time.perf_counter()
    r = sample()
    reml, draws = r["reml"], r["draws"]
    rows = [(f"beta[{n}]", reml["beta"][i], draws["beta"][:, i]) for i, n in enumerate(r["names"])]
    rows += [(f"theta[{i}]", reml["theta"][i], draws["theta"][:, i]) for i in range(3)]
    rows += [("sigma", reml["sigma"], draws["sigma"])]
    print(f"{'parameter':20}{'REML':>10}{'post. mean':>12}{'post. sd':>10}")
    for name, est, x in rows:
        print(f"{name:20}{est:10.4f}{x.mean():12.4f}{x.std():10.4f}")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
