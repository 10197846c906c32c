"""jaxmm.functional: the likelihood as a JAX building block and gradients through the fit.

Every function is checked against a dense brute-force computation (V = Z Lambda Lambda' Z'
+ W^-1, small n) and its gradients against central finite differences (float64, relative
1e-5) on sleepstudy, Penicillin and a crossed random-slope model; the implicit gradient of
beta-hat against finite differences of refits and the closed form at fixed theta.
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm import functional as F
from jaxmm.precision import compute


def crossed_data(seed: int = 1) -> pd.DataFrame:
    """Simulated crossed design, random intercepts and slopes for both factors, unbalanced x."""
    rng = np.random.default_rng(seed)
    g1 = np.repeat(np.arange(15), 12)
    g2 = np.tile(np.arange(6), 30)
    x = rng.normal(size=g1.size)
    b1 = rng.normal(size=(15, 2)) * [1.0, 0.5]
    b2 = rng.normal(size=(6, 2)) * [0.8, 0.4]
    y = 1 + 0.5 * x + b1[g1, 0] + b1[g1, 1] * x + b2[g2, 0] + b2[g2, 1] * x + rng.normal(size=g1.size)
    return pd.DataFrame({
        "y": y, "x": x,
        "g1": pd.Categorical([f"a{i:02d}" for i in g1]),
        "g2": pd.Categorical([f"b{i}" for i in g2]),
    })


MODELS = {
    "sleepstudy": ("Reaction ~ Days + (Days|Subject)", "sleepstudy", [0.9, 0.05, 0.25]),
    "penicillin": ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin", [1.4, 3.0]),
    "crossed": ("y ~ x + (1 + x|g1) + (1 + x|g2)", None, [0.9, 0.1, 0.5, 0.7, -0.1, 0.4]),
}


@lru_cache(maxsize=None)
def design(name: str, reml: bool = True) -> F.MixedDesign:
    formula, data, _ = MODELS[name]
    df = crossed_data() if data is None else jaxmm.datasets.load(data)
    return F.model(formula, df, reml=reml)


def point(name: str, seed: int = 0) -> dict:
    """A non-optimal parameter point with random positive weights."""
    d = design(name)
    rng = np.random.default_rng(seed)
    beta = np.linalg.lstsq(d.X, d.y, rcond=None)[0]
    sigma = 0.8 * np.std(d.y - d.X @ beta)
    return dict(
        theta=np.asarray(MODELS[name][2]), beta=beta * 1.01 + 0.1, sigma=np.float64(sigma),
        u=rng.normal(size=d.n_u) * 0.5, y=d.y.copy(), w=rng.uniform(0.5, 1.5, d.nobs), X=d.X.copy(),
    )


def dense(d: F.MixedDesign, theta, w):
    """Dense Z, Lambda and V0 = Z Lambda Lambda' Z' + W^-1 (V = sigma^2 V0)."""
    n = d.nobs
    Z = np.zeros((n, d.n_u))
    lay = d.layout
    rows = np.arange(n)
    for a in range(lay.q1):
        Z[rows, d.idx1 * lay.q1 + a] = d.Z1[:, a]
    n1 = lay.l1 * lay.q1
    for s in range(d.zr_col.shape[1]):
        Z[rows, n1 + d.zr_col[:, s]] = d.zr_val[:, s]
    with compute():
        Lam = np.asarray(jax.vmap(lambda e: F.lambda_u(theta, d, e), out_axes=1)(jnp.eye(d.n_u)))
    ZL = Z @ Lam
    return Z, Lam, ZL @ ZL.T + np.diag(1.0 / w)


def dense_criterion(d, theta, w, reml):
    X, y, n, p = d.X, d.y, d.nobs, d.X.shape[1]
    _, _, V0 = dense(d, theta, w)
    Vi = np.linalg.inv(V0)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    dof = n - p if reml else n
    s2 = r @ Vi @ r / dof
    out = np.linalg.slogdet(V0)[1] + dof * (1 + np.log(2 * np.pi * s2))
    return out + (np.linalg.slogdet(XtViX)[1] if reml else 0.0), beta, np.sqrt(s2)


@pytest.mark.parametrize("name", list(MODELS))
def test_weighted_likelihoods_match_dense_brute_force(name):
    d, pt = design(name), point(name)
    with compute():
        th, w = jnp.asarray(pt["theta"]), jnp.asarray(pt["w"])
        obj = float(jax.jit(F.objective)(th, d, None, w))
        c = jax.jit(F.conditional_modes)(th, d, None, w)
        ll = float(jax.jit(F.loglik)(pt["beta"], th, pt["sigma"], d, None, w))
        plain = float(jax.jit(F.objective)(th, d))
    ref, beta, sig = dense_criterion(d, pt["theta"], pt["w"], reml=True)
    assert abs(obj - ref) < 1e-10 * abs(ref)
    np.testing.assert_allclose(np.asarray(c.beta), beta, rtol=1e-9)
    assert abs(float(c.sigma) - sig) < 1e-9 * sig
    # conditional mode of b: G Z' V^-1 (y - X beta) with G = Lambda Lambda' (sigma^2 cancels)
    Z, Lam, V0 = dense(d, pt["theta"], pt["w"])
    b = Lam @ Lam.T @ Z.T @ np.linalg.solve(V0, d.y - d.X @ beta)
    np.testing.assert_allclose(np.asarray(c.b), b, atol=1e-9 * np.abs(b).max())
    # full marginal log-likelihood: y ~ N(X beta, sigma^2 V0)
    r = d.y - d.X @ pt["beta"]
    V = pt["sigma"] ** 2 * V0
    ref_ll = -0.5 * (d.nobs * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r))
    assert abs(ll - ref_ll) < 1e-9 * abs(ref_ll)
    # unit weights by the fast path agree with the dense unweighted criterion
    assert abs(plain - dense_criterion(d, pt["theta"], np.ones(d.nobs), True)[0]) < 1e-8 * abs(ref)


def test_ml_criterion_and_log_joint_integrate_to_loglik():
    d, pt = design("sleepstudy", reml=False), point("sleepstudy")
    with compute():
        th, w = jnp.asarray(pt["theta"]), jnp.asarray(pt["w"])
        obj = float(F.objective(th, d, w=w))
        beta, sigma = jnp.asarray(pt["beta"]), pt["sigma"]
        # log p(y) = log p(y, u*) + q/2 log(2 pi sigma^2) - ldL2 / 2 (exact for a Gaussian)
        c = F.conditional_modes(th, d, w=w, beta=beta)
        lj = float(F.log_joint(beta, th, sigma, c.u, d, w=w))
        ll = float(F.loglik(beta, th, sigma, d, w=w))
        u_grad = np.asarray(jax.grad(F.log_joint, 3)(beta, th, sigma, c.u, d, None, w))
    assert abs(obj - dense_criterion(d, pt["theta"], pt["w"], reml=False)[0]) < 1e-8 * abs(obj)
    q = d.n_u
    assert abs(ll - (lj + 0.5 * q * np.log(2 * np.pi * sigma**2) - 0.5 * float(c.estimates.ldL2))) < 1e-8 * abs(ll)
    assert np.max(np.abs(u_grad)) < 1e-8  # the modes given beta maximize the joint density


# ----------------------------------------------------------------------------- gradients
def check_grads(fun, args: dict, seed: int = 0, h: float = 1e-4, rel: float = 1e-5) -> None:
    """Directional derivative along a random direction per argument: autodiff vs central
    differences (steps scaled to each argument's size, Richardson-extrapolated: O(h^4))."""
    vg = jax.jit(jax.value_and_grad(fun))
    args = {k: jnp.asarray(v) for k, v in args.items()}
    _, g = vg(args)
    rng = np.random.default_rng(seed)
    for k, a in args.items():
        scale = float(np.sqrt(np.mean(np.asarray(a) ** 2))) or 1.0
        v = jnp.asarray(rng.normal(size=a.shape) * scale)
        cd = lambda s: float(vg({**args, k: a + s * v})[0] - vg({**args, k: a - s * v})[0]) / (2 * s)  # noqa: E731
        fd = (4 * cd(h / 2) - cd(h)) / 3
        ad = float(jnp.sum(g[k] * v))
        assert abs(fd - ad) <= rel * abs(ad), (k, fd, ad)


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_of_every_function_match_finite_differences(name):
    d, pt = design(name), point(name)
    rng = np.random.default_rng(3)
    r_u, r_b = jnp.asarray(rng.normal(size=d.n_u)), jnp.asarray(rng.normal(size=d.X.shape[1]))
    data = lambda a: dict(y=a["y"], w=a["w"], X=a["X"])  # noqa: E731

    def objective(a):  # weighted path + the unweighted fast path
        return F.objective(a["theta"], d, **data(a)) + F.objective(a["theta"], d, a["y"])

    def loglik(a):
        return F.loglik(a["beta"], a["theta"], a["sigma"], d, **data(a))

    def log_joint(a):
        return F.log_joint(a["beta"], a["theta"], a["sigma"], a["u"], d, **data(a))

    def modes(a):  # at beta-hat(theta), and given beta
        c = F.conditional_modes(a["theta"], d, **data(a))
        cb = F.conditional_modes(a["theta"], d, **data(a), beta=a["beta"])
        return c.u @ r_u + c.beta @ r_b + c.sigma + cb.b @ r_u

    keys = {
        objective: ("theta", "y", "w", "X"),
        loglik: ("beta", "theta", "sigma", "y", "w", "X"),
        log_joint: ("beta", "theta", "sigma", "u", "y", "w", "X"),
        modes: ("beta", "theta", "y", "w", "X"),
    }
    with compute():
        for fun, ks in keys.items():
            check_grads(fun, {k: pt[k] for k in ks})


@pytest.mark.parametrize("name", list(MODELS))
def test_gradients_through_the_fit_match_refits(name):
    """The implicit gradient of (beta_hat, theta_hat, sigma_hat) wrt y, w and X agrees with
    central differences of full refits."""
    d, pt = design(name), point(name)
    rng = np.random.default_rng(5)
    r = jnp.asarray(rng.normal(size=d.X.shape[1] + d.n_theta + 1))

    def summary(a):
        est = F.fit(d, a["y"], a["w"], a["X"])
        return jnp.concatenate([est.beta, est.theta, est.sigma[None]]) @ r

    with compute():
        check_grads(summary, {k: pt[k] for k in ("y", "w", "X")}, h=1e-4)


#: lme4's REML estimates for sleepstudy (tests/fixtures/lme4/sleep_full.json)
SLEEP_THETA = [0.966741773967412, 0.0151690588960361, 0.230909953207795]
SLEEP_BETA = [251.405104848485, 10.467285959596]


def test_implicit_gradient_of_beta_equals_closed_form():
    """At fixed theta, beta = (X'V^-1X)^-1 X'V^-1 y. On sleepstudy (balanced) beta-hat does
    not depend on theta, so the total implicit Jacobian equals it too."""
    d = design("sleepstudy")

    @jax.jit
    def fit_and_jacobian(y):
        est, vjp = jax.vjp(lambda y: F.fit(d, y), y)
        rows = [vjp(F.FitEstimates(e, jnp.zeros(3), jnp.zeros(())))[0] for e in jnp.eye(2)]
        return est, jnp.stack(rows)

    with compute():
        est, J = fit_and_jacobian(jnp.asarray(d.y))
        th = est.theta
        Jfix = np.asarray(jax.jacrev(lambda y: F.conditional_modes(th, d, y).beta)(jnp.asarray(d.y)))
    _, _, V0 = dense(d, np.asarray(th), np.ones(d.nobs))
    ViX = np.linalg.solve(V0, d.X)
    closed = np.linalg.solve(d.X.T @ ViX, ViX.T)
    np.testing.assert_allclose(Jfix, closed, atol=1e-10)
    np.testing.assert_allclose(np.asarray(J), closed, atol=1e-10)
    np.testing.assert_allclose(np.asarray(th), SLEEP_THETA, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(est.beta), SLEEP_BETA, rtol=1e-6)


def test_boundary_parameters_are_held_fixed():
    """Dyestuff2's fit is singular (theta = 0): beta-hat is then the mean, d beta/dy = 1/n."""
    d = F.model("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff2"))
    with compute():
        fit = jax.jit(F.fit)
        est = fit(d)
        g = np.asarray(jax.jit(jax.grad(lambda y: sum(F.fit(d, y)[:2])[0]))(jnp.asarray(d.y)))
    assert float(est.theta[0]) == 0.0
    np.testing.assert_allclose(g, 1.0 / d.nobs, rtol=1e-10)


# ----------------------------------------------------------------------------- transforms
def test_vmap_over_responses_and_jit_of_user_code():
    d = design("sleepstudy")
    rng = np.random.default_rng(7)
    with compute():
        Y = jnp.asarray(d.y[None, :] + 20 * rng.normal(size=(3, d.nobs))).at[0].set(d.y)
        th = jnp.asarray([0.9, 0.05, 0.25])
        batch = jax.vmap(lambda y: F.objective(th, d, y))(Y)
        one = jnp.stack([F.objective(th, d, y) for y in Y])
        np.testing.assert_allclose(np.asarray(batch), np.asarray(one), rtol=1e-12)
        fits = jax.jit(jax.vmap(lambda y: F.fit(d, y)))(Y)
        # each lane is an optimum of its own response
        grads = jax.vmap(jax.grad(F.objective), (0, None, 0))(fits.theta, d, Y)
        assert np.max(np.abs(np.asarray(grads))) < 1e-8
        assert not np.allclose(np.asarray(fits.theta[1]), np.asarray(fits.theta[2]))

        def user_loss(shift, y):  # a user's function calling the API, jitted and differentiated
            est = F.fit(d, y - shift * d.X[:, 1])
            return F.loglik(est.beta, est.theta, est.sigma, d, y) + est.beta[1]

        vg = jax.jit(jax.value_and_grad(user_loss))
        g = vg(1.0, Y[0])[1]
        h = 1e-3
        fd = (vg(1.0 + h, Y[0])[0] - vg(1.0 - h, Y[0])[0]) / (2 * h)
    np.testing.assert_allclose(np.asarray(fits.theta[0]), SLEEP_THETA, rtol=1e-4)
    assert abs(float(g) - float(fd)) < 1e-5 * abs(float(fd))


def test_bad_input_raises_jaxmm_errors():
    d = design("sleepstudy")
    with compute():
        with pytest.raises(jaxmm.DataError, match="y must have shape"):
            F.objective(jnp.ones(3), d, jnp.ones(5))
        with pytest.raises(jaxmm.ModelError, match="theta must have shape"):
            F.objective(jnp.ones(2), d)
        with pytest.raises(jaxmm.DataError, match="w must have shape"):
            F.loglik(jnp.ones(2), jnp.ones(3), 1.0, d, w=jnp.ones(3))
        with pytest.raises(jaxmm.ModelError, match="u must have shape"):
            F.log_joint(jnp.ones(2), jnp.ones(3), 1.0, jnp.ones(3), d)
