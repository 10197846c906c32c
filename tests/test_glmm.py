"""GLMMs (glmer) against lme4 1.1-31 for every GLMM fixture, plus the pieces lme4 has no
fixture for: the implicit gradient, response forms, offsets, nagq = 0, LRTs, prediction.

Tolerances are issue 5's: -2 log-likelihood no higher than lme4's + 1e-6 relative and within
1e-4 relative; beta 1e-3 relative; standard errors 1e-2 relative; variance components 1e-3
relative. Two documented exceptions, both traced to lme4's own numerics, not ours:

* lme4's Laplace deviance takes log det L from the weights of the *previous* PIRLS iterate
  and stops PIRLS at a relative change of 1e-7 in the penalized deviance; its value is
  therefore ~5e-4 above the exact Laplace deviance (cbpp: ldL2 16.8969 vs 16.8964 at lme4's
  own estimates), and its finite-difference Hessian (hence vcov) carries that lag. On cbpp
  the resulting standard errors differ by up to 1.3 % (ours are the exact Hessian's, equal
  at lme4's own estimates and at ours); tested at 2e-2.
  ``test_lme4_vcov_formula_reproduced_and_cbpp_gap_is_its_deviance`` shows it: lme4's own
  formula (central differences of the deviance at its estimates) reproduces its AGQ standard
  errors to 1e-6 and lands on ours for the Laplace fit. AGQ (which refactors at the mode)
  agrees to 1e-5.
* VerbAgg: lme4's Nelder-Mead stopped where the exact gradient is still 0.07; its intercept
  (0.199, standard error 0.41) differs from the optimum by 1.1e-3 relative, 6e-4 standard
  errors; tested at 2e-3 with the check that our deviance at lme4's estimates is higher.
"""

from __future__ import annotations

import ast
import warnings
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import dataset_for, fixture_ids, load_ref

GLMM = fixture_ids("GLMM")
SE_TOL = {"cbpp_glmm": 2e-2}
BETA_TOL = {"verbagg_glmm": 2e-3}


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))


def parsed(v):
    return ast.literal_eval(v) if isinstance(v, str) else v


@lru_cache(maxsize=None)
def fit(model_id: str):
    ref = load_ref(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return jaxmm.glmer(ref["formula"], dataset_for(ref), family=ref["family"],
                           nagq=int(ref["nAGQ"]))


def test_every_glmm_fixture_is_covered():
    assert sorted(GLMM) == ["cbpp_glmm", "cbpp_glmm_agq25", "grouse_glmm", "verbagg_glmm"]


@pytest.mark.parametrize("model_id", GLMM)
def test_loglik_and_criteria(model_id):
    ref, g = load_ref(model_id), fit(model_id)
    m2ll = ref["minus2logLik"]
    assert g.objective <= m2ll + 1e-6 * abs(m2ll)
    assert abs(g.objective - m2ll) <= 1e-4 * abs(m2ll)
    assert np.isclose(g.loglik, ref["logLik"], rtol=1e-4)
    assert np.isclose(g.aic, ref["AIC"], rtol=1e-4) and np.isclose(g.bic, ref["BIC"], rtol=1e-4)
    assert g.df_resid == ref["df_resid"] and g.nobs == ref["nobs"]
    assert g.ngroups == ref["ngroups"]
    assert np.isclose(g.deviance, ref["deviance"], rtol=1e-3)  # lme4's deviance(m)
    assert g.opt.converged, g.opt.warnings
    assert g.is_singular == ref["isSingular"]


@pytest.mark.parametrize("model_id", GLMM)
def test_fixed_effects_and_standard_errors(model_id):
    ref, g = load_ref(model_id), fit(model_id)
    assert list(g.fixef.index) == ref["X_colnames"]
    assert rel(g.fixef[ref["X_colnames"]], list(ref["fixef"].values())) <= BETA_TOL.get(model_id, 1e-3)
    assert rel(g.stderr, list(ref["stderr"].values())) <= SE_TOL.get(model_id, 1e-2)
    tab = pd.DataFrame(parsed(ref["coef_table"])).set_index("term")
    ct = g.coef_table()
    tol = SE_TOL.get(model_id, 1e-2)
    assert np.allclose(ct["z value"], tab["z value"], rtol=tol)
    assert np.allclose(np.log(ct["Pr(>|z|)"]), np.log(tab["Pr(>|z|)"]), rtol=2 * tol)


@pytest.mark.parametrize("model_id", GLMM)
def test_variance_components_and_ranef(model_id):
    ref, g = load_ref(model_id), fit(model_id)
    assert rel(g.theta, list(ref["theta"].values())) <= 1e-3
    assert list(g.theta.index) == list(ref["theta"])
    vc = pd.DataFrame(parsed(ref["VarCorr"]))
    assert rel(g.varcorr()["vcov"], vc["vcov"]) <= 2e-3  # variances: twice theta's tolerance
    assert rel(g.varcorr()["sdcor"], vc["sdcor"]) <= 1e-3
    if "ranef" in ref:
        rr = pd.DataFrame(parsed(ref["ranef"]))
        ours = g.ranef()
        assert list(ours["grp"].astype(str)) == list(rr["grp"].astype(str))
        assert np.max(np.abs(ours["condval"] - rr["condval"])) <= 2e-3
        assert rel(ours["condsd"], rr["condsd"]) <= 2e-3


@pytest.mark.parametrize("model_id", GLMM)
def test_fitted_and_residuals(model_id):
    ref, g = load_ref(model_id), fit(model_id)
    assert np.allclose(g.fitted()[:20], parsed(ref["fitted_first20"]), atol=1e-3)
    assert np.allclose(g.fitted("link")[:20], parsed(ref["linpred_first20"]), atol=2e-3)
    assert np.allclose(g.residuals("response")[:20], parsed(ref["resid_first20"]), atol=1e-3)
    assert np.isclose(np.sum(g.residuals("deviance") ** 2), g.deviance)


def test_verbagg_lme4_stopped_short():
    """Our deviance at lme4's own estimates is above our optimum (lme4 stopped early)."""
    from jaxmm.optimize.glmm import value_and_grad_fn

    ref, g = load_ref("verbagg_glmm"), fit("verbagg_glmm")
    vg = value_and_grad_fn(g.gdesign.layout, 1, False)  # compiled by the fit
    with jaxmm.x64():
        par = jnp.asarray(list(ref["theta"].values()) + list(ref["fixef"].values()))
        data = jax.tree_util.tree_map(jnp.asarray, g.gdesign.data)
        at_lme4 = float(vg(par, data, jnp.asarray(g.fit.u))[0])
    assert at_lme4 > g.objective


def _lme4_vcov_at_lme4_estimates(model_id: str) -> tuple[np.ndarray, np.ndarray]:
    """lme4's vcov formula for a GLMM (vcov.merMod with use.hessian: the beta block of
    2 H^-1, H from deriv12: central differences of the deviance over (theta, beta), step
    1e-4) applied to our exact deviance at lme4's own estimates; and the RX-based formula
    (lme4's unsc()) at our estimates."""
    from jaxmm.optimize.glmm import value_and_grad_fn

    ref, g = load_ref(model_id), fit(model_id)
    lay, nagq = g.gdesign.layout, int(ref["nAGQ"])
    vg = value_and_grad_fn(lay, nagq, False)
    x = np.array(list(ref["theta"].values()) + list(ref["fixef"].values()))
    n, d, nt = x.size, 1e-4, lay.n_theta
    with jaxmm.x64():
        data = jax.device_put(g.gdesign.data)
        u = jnp.asarray(g.fit.u)
        dev = lambda p: float(vg(jnp.asarray(p), data, u)[0])  # noqa: E731
        E = np.eye(n) * d
        H = np.array([[(dev(x + E[i] + E[j]) - dev(x + E[i] - E[j]) - dev(x - E[i] + E[j])
                        + dev(x - E[i] - E[j])) / (4 * d * d) for j in range(n)] for i in range(n)])
    se_hess = np.sqrt(np.diag(2.0 * np.linalg.inv(H))[nt:])
    L = np.asarray(g.fit.factor_ub.L22)[lay.rz:, lay.rz:]
    Li = np.linalg.inv(L)
    return se_hess, np.sqrt(np.diag(Li.T @ Li))


def test_lme4_vcov_formula_reproduced_and_cbpp_gap_is_its_deviance():
    """The standard-error definition is lme4's: its formula on the exact AGQ deviance at its
    estimates gives its standard errors to 1e-6, the RX-based formula would miss by ~2 %.
    On cbpp's Laplace fit the same formula at lme4's estimates lands where ours does (1e-3),
    1.3 % from lme4's: the gap is the lagged log det inside lme4's Laplace deviance (see the
    module docstring), not the estimates nor the definition."""
    ref = load_ref("cbpp_glmm_agq25")
    se_ref = np.asarray(list(ref["stderr"].values()))
    se_hess, se_unsc = _lme4_vcov_at_lme4_estimates("cbpp_glmm_agq25")
    assert rel(se_hess, se_ref) < 1e-6
    assert rel(se_unsc, se_ref) > 1e-2
    ref, g = load_ref("cbpp_glmm"), fit("cbpp_glmm")
    se_ref = np.asarray(list(ref["stderr"].values()))
    se_hess, _ = _lme4_vcov_at_lme4_estimates("cbpp_glmm")
    assert rel(se_hess, g.stderr) < 1e-3
    assert 1e-2 < rel(se_hess, se_ref) < 2e-2


@pytest.mark.parametrize("family,nagq", [("binomial", 1), ("binomial", 5), ("probit", 1)])
def test_implicit_gradient_matches_finite_differences(family, nagq):
    from jaxmm.optimize.glmm import value_and_grad_fn

    fam = jaxmm.binomial("probit") if family == "probit" else family
    gd = jaxmm.glformula("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                         jaxmm.datasets.load("cbpp"), fam)
    vg = value_and_grad_fn(gd.layout, nagq, False)
    with jaxmm.x64():
        par = jnp.asarray([0.9, -1.2, -0.8, -1.0, -1.4])
        data = jax.tree_util.tree_map(jnp.asarray, gd.data)
        val = lambda p: float(vg(p, data, jnp.zeros(15))[0])  # noqa: E731
        g = np.asarray(vg(par, data, jnp.zeros(15))[1])
        h = 1e-5
        fd = np.array([(val(par.at[i].add(h)) - val(par.at[i].add(-h))) / (2 * h) for i in range(5)])
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-6)


def test_response_forms_agree():
    cbpp = jaxmm.datasets.load("cbpp")
    g = fit("cbpp_glmm")
    cbpp = cbpp.assign(prop=cbpp["incidence"] / cbpp["size"])
    gp = jaxmm.glmer("prop ~ period + (1 | herd)", cbpp, family="binomial", weights="size")
    assert np.isclose(gp.objective, g.objective, rtol=1e-9)
    assert np.allclose(gp.fixef, g.fixef, atol=1e-6)
    va = jaxmm.datasets.load("VerbAgg").iloc[:1200]
    va = va[va["id"].isin(va["id"].cat.categories[:80])]
    f1 = jaxmm.glmer("r2 ~ btype + (1 | id)", va, family=jaxmm.binomial())
    f2 = jaxmm.glmer("y ~ btype + (1 | id)", va.assign(y=(va["r2"] == "Y").astype(float)))
    assert np.isclose(f1.objective, f2.objective, rtol=1e-10)


def test_offset_in_formula_equals_argument_and_shifts_intercept():
    gt = jaxmm.datasets.load("grouseticks").assign(expo=2.0)
    f0 = jaxmm.glmer("TICKS ~ YEAR + (1|LOCATION)", gt, family="poisson")
    f1 = jaxmm.glmer("TICKS ~ YEAR + offset(log(expo)) + (1|LOCATION)", gt, family="poisson")
    f2 = jaxmm.glmer("TICKS ~ YEAR + (1|LOCATION)", gt, family="poisson",
                     offset=np.log(gt["expo"].to_numpy()))
    assert np.isclose(f1.objective, f2.objective, rtol=1e-10)
    assert np.isclose(f1.fixef["(Intercept)"], f0.fixef["(Intercept)"] - np.log(2.0), atol=1e-5)
    assert np.allclose(f1.fitted(), f0.fitted(), rtol=1e-5)


def test_nagq0_is_a_coarser_optimum():
    g0 = jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)",
                     jaxmm.datasets.load("cbpp"), nagq=0)
    g = fit("cbpp_glmm")
    assert g0.nagq == 0 and g0.objective >= g.objective - 1e-8
    assert abs(g0.objective - g.objective) < 0.1
    assert rel(g0.fixef, g.fixef) < 5e-2
    assert "nAGQ = 0" in g0.summary()


def test_summary_layout():
    text = fit("cbpp_glmm").summary()
    assert "Generalized linear mixed model fit by maximum likelihood (Laplace Approximation)" in text
    assert " Family: binomial  ( logit )" in text
    assert "z value Pr(>|z|)" in text and "df.resid" in text
    assert "Adaptive Gauss-Hermite Quadrature, nAGQ = 25" in fit("cbpp_glmm_agq25").summary()


def test_lrt_between_glmms():
    cbpp = jaxmm.datasets.load("cbpp")
    g0 = jaxmm.glmer("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cbpp)
    g = fit("cbpp_glmm")
    t = jaxmm.anova(g0, g)
    assert int(t.loc["m2", "Df"]) == 3
    assert np.isclose(t.loc["m2", "Chisq"], 2 * (g.loglik - g0.loglik))
    assert t.loc["m2", "Pr(>Chisq)"] < 1e-3


def test_predict_and_simulate():
    g = fit("cbpp_glmm")
    cbpp = jaxmm.datasets.load("cbpp")
    assert np.allclose(g.predict(cbpp, type="response"), g.fitted())
    pop = g.predict(cbpp, re_form="~0")
    assert np.allclose(pop, g.design.X @ g.fixef.to_numpy())
    new = cbpp.iloc[:2].assign(herd=pd.Categorical(["99", "1"]))
    with pytest.raises(jaxmm.DataError, match="new level"):
        g.predict(new)
    p = g.predict(new, allow_new_levels=True)
    assert np.isclose(p[0], pop[0]) and np.isclose(p[1], g.fitted("link")[1])
    sims = g.simulate(3, seed=1)
    assert sims.shape == (3, 56) and np.all((sims >= 0) & (sims <= 1))


def test_bad_input_errors():
    cbpp = jaxmm.datasets.load("cbpp")
    gt = jaxmm.datasets.load("grouseticks")
    with pytest.raises(jaxmm.ModelError, match="single scalar random-effects term"):
        jaxmm.glmer("TICKS ~ YEAR + (1|BROOD) + (1|LOCATION)", gt, family="poisson", nagq=5)
    with pytest.raises(jaxmm.ModelError, match="family 'gaussian' is not supported"):
        jaxmm.glmer("incidence ~ period + (1 | herd)", cbpp, family="gaussian")
    with pytest.raises(jaxmm.DataError, match="outside"):
        jaxmm.glmer("incidence ~ period + (1 | herd)", cbpp, family="binomial")
    with pytest.raises(jaxmm.DataError, match="cbind"):
        jaxmm.glmer("cbind(incidence, size) ~ period + (1 | herd)", cbpp, family="poisson")
    with pytest.raises(jaxmm.ModelError, match="binomial link"):
        jaxmm.binomial("log")
