"""A deep mixed model: a small MLP fixed effect plus random intercepts per group, trained
jointly on the marginal likelihood.

    y_ij = f_phi(x_ij) + beta_0 + b_i + e_ij,   b_i ~ N(0, tau^2),  e_ij ~ N(0, sigma^2)

The MLP f_phi (plain JAX parameters, no bias on its output) enters as an offset: the
response handed to jaxmm is y - f_phi(x), the formula is ``y ~ 1 + (1|g)``. For given phi,
the ML deviance profiled over beta_0 and sigma is ``jaxmm.functional.objective(theta, d,
y - f_phi(x))``; optax's Adam minimizes it over (phi, theta) together, so the network is fitted
by the marginal likelihood (random intercepts integrated out), not by least squares.
Afterwards sigma-hat and tau-hat = theta * sigma-hat are read off
``conditional_modes`` and printed next to the truth used to simulate.

Usage:
    python examples/deep_mixed_model.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from jaxmm import functional as F
from jaxmm.precision import compute

TAU, SIGMA, BETA0 = 1.0, 0.3, 2.0


def truth_f(x: np.ndarray) -> np.ndarray:
    return np.sin(2.0 * x[:, 0]) + 0.5 * x[:, 1] ** 2 - 0.5


def simulate(groups: int, per_group: int, seed: int = 0):
    """Data frame (y, g), features x (n, 2) and the realized sd of the group effects."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(groups), per_group)
    x = rng.uniform(-1.5, 1.5, size=(g.size, 2))
    b = rng.normal(0.0, TAU, groups)
    y = BETA0 + truth_f(x) + b[g] + rng.normal(0.0, SIGMA, g.size)
    df = pd.DataFrame({"y": y, "g": pd.Categorical([f"g{i:03d}" for i in g])})
    return df, x, float(np.std(b))


def init_mlp(key, sizes=(2, 32, 1)) -> list:
    params = []
    for k, (m, n) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes[:-1], sizes[1:])):
        params.append((jax.random.normal(k, (m, n)) * np.sqrt(1.0 / m), jnp.zeros(n)))
    return params


def mlp(params, x):
    for W, b in params[:-1]:
        x = jnp.tanh(x @ W + b)
    return (x @ params[-1][0])[:, 0]  # no output bias: beta_0 is the model's intercept


def train(groups: int = 40, per_group: int = 15, steps: int = 2000, seed: int = 0) -> dict:
    """Simulate, train (phi, theta) jointly, return truth and estimates."""
    df, x, tau_realized = simulate(groups, per_group, seed)
    d = F.model("y ~ 1 + (1|g)", df, reml=False)
    with compute():
        xs, y = jnp.asarray(x), jnp.asarray(d.y)
        params = {"mlp": init_mlp(jax.random.PRNGKey(seed)), "theta": jnp.ones(1)}

        def loss(p):  # ML deviance, profiled over beta_0 and sigma
            return F.objective(p["theta"], d, y - mlp(p["mlp"], xs))

        opt = optax.adam(optax.cosine_decay_schedule(1e-2, steps, alpha=0.05))

        @jax.jit
        def step(p, state):
            value, g = jax.value_and_grad(loss)(p)
            updates, state = opt.update(g, state, p)
            return optax.apply_updates(p, updates), state, value

        state = opt.init(params)
        for _ in range(steps):
            params, state, value = step(params, state)
        c = F.conditional_modes(params["theta"], d, y - mlp(params["mlp"], xs))
        sigma = float(c.sigma)
        f_hat = np.asarray(mlp(params["mlp"], xs))
    err = f_hat - truth_f(x)  # f is identified up to a constant (beta_0)
    return dict(
        tau=abs(float(params["theta"][0])) * sigma, sigma=sigma, deviance=float(value),
        tau_realized=tau_realized, f_rmse=float(np.std(err)), n=len(df), groups=groups,
    )


def main() -> None:
    t0 = time.perf_counter()
    r = train()
    print(f"{r['n']} observations in {r['groups']} groups; ML deviance {r['deviance']:.2f}")
    print(f"{'':24}{'truth':>8}{'estimate':>10}")
    print(f"{'random intercept sd tau':24}{TAU:8.3f}{r['tau']:10.3f}"
          f"   (sd of the {r['groups']} simulated b_i: {r['tau_realized']:.3f})")
    print(f"{'residual sd sigma':24}{SIGMA:8.3f}{r['sigma']:10.3f}")
    print(f"RMSE of the fitted MLP against the true f (up to a constant): {r['f_rmse']:.3f}")
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
