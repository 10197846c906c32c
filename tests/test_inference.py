"""Inference against lmerTest 3.1-3 and lme4 1.1-31 (fixtures in tests/fixtures/lme4/):
Satterthwaite t and F tests (types I and III), lme4's sequential anova, likelihood-ratio
tests, Wald intervals, and the exact derivatives they rest on."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import dataset_for, fitted, fixture_ids, load_ref
from jaxmm.results.lmm import LinearMixedModel

LMM = fixture_ids("LMM")
WITH_TERMS = [m for m in LMM if load_ref(m)["anova_satt_typeIII"]]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


def at_lme4_theta(model_id: str) -> LinearMixedModel:
    """The fitted model re-evaluated at lme4's theta (every derived quantity is a function
    of theta; the optimizer's agreement with lme4 is tested in test_lmm_parity)."""
    ref, m = load_ref(model_id), fitted(model_id)
    theta = np.array(list(ref["theta"].values()))
    opt = type(m.opt)(**{**m.opt.__dict__, "theta": theta, "warnings": [], "hessian": None})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return LinearMixedModel(m.design, m.devfun, opt)


@pytest.mark.parametrize("model_id", LMM)
def test_satterthwaite_coefficients(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    tab = m.coef_table()
    want = pd.DataFrame(ref["satterthwaite"]).set_index("term")
    assert list(tab.index) == list(want.index)
    assert rel(tab["df"], want["df"]) < 1e-2
    assert np.max(np.abs(tab["Pr(>|t|)"] - want["Pr(>|t|)"])) < 1e-3
    assert rel(tab["t value"], want["t value"]) < 1e-3


@pytest.mark.parametrize("type_", ["III", "I"])
@pytest.mark.parametrize("model_id", WITH_TERMS)
def test_anova_satterthwaite(model_id, type_):
    ref, m = load_ref(model_id), fitted(model_id)
    want = pd.DataFrame(ref[f"anova_satt_type{type_}"]).set_index("term")
    got = m.anova(type=type_)
    assert list(got.index) == list(want.index)
    assert (got["NumDF"].to_numpy() == want["NumDF"].to_numpy()).all()
    assert rel(got["F value"], want["F value"]) < 1e-2
    assert rel(got["DenDF"], want["DenDF"]) < 1e-2
    assert rel(got["Sum Sq"], want["Sum Sq"]) < 1e-2
    assert np.max(np.abs(got["Pr(>F)"] - want["Pr(>F)"])) < 1e-3


@pytest.mark.parametrize("model_id", [m for m in WITH_TERMS if load_ref(m)["nobs"] < 1000])
def test_anova_satterthwaite_tight_at_lme4_theta(model_id):
    """At lme4's theta the type III F statistics agree far below the tolerance: what is
    left is lmerTest's numerical differentiation, which only touches DenDF."""
    ref = load_ref(model_id)
    want = pd.DataFrame(ref["anova_satt_typeIII"]).set_index("term")
    got = at_lme4_theta(model_id).anova(type=3)
    assert rel(got["F value"], want["F value"]) < 1e-5
    assert rel(got["DenDF"], want["DenDF"]) < 1e-3


@pytest.mark.parametrize("model_id", WITH_TERMS)
def test_anova_lme4(model_id):
    ref = load_ref(model_id)
    want = pd.DataFrame(ref["anova_lme4"]).set_index("term")
    got = at_lme4_theta(model_id).anova(ddf="lme4")
    assert list(got.index) == list(want.index)
    assert (got["npar"].to_numpy() == want["npar"].to_numpy()).all()
    for col in ("Sum Sq", "Mean Sq", "F value"):
        assert rel(got[col], want[col]) < 1e-6, col
    # and the fit's own table is within the optimizer's agreement with lme4
    assert rel(fitted(model_id).anova(ddf="lme4")["F value"], want["F value"]) < 1e-3


def test_anova_without_terms_is_empty():
    m = fitted("dyestuff")
    assert m.anova().empty and m.anova(ddf="lme4").empty


@pytest.mark.parametrize("which", ["lrt_sleep", "lrt_hr"])
def test_likelihood_ratio_tables(which):
    ref = load_ref(which)
    names = [row["model"] for row in ref["table"]]
    models = {nm: fitted(nm) for nm in names}
    shuffled = dict(reversed(list(models.items())))  # the table orders by npar itself
    got = jaxmm.anova(**shuffled)
    want = pd.DataFrame(ref["table"]).set_index("model")
    assert list(got.index) == names
    assert "refitting model(s) with ML" in str(got)
    assert (got["npar"].to_numpy() == want["npar"].to_numpy()).all()
    assert np.max(np.abs(got["Chisq"].to_numpy()[1:] - want["Chisq"].to_numpy()[1:].astype(float))) < 1e-5
    assert rel(got["logLik"], want["logLik"]) < 1e-8
    assert rel(got["AIC"], want["AIC"]) < 1e-8 and rel(got["BIC"], want["BIC"]) < 1e-8
    assert np.max(np.abs(got["Pr(>Chisq)"].to_numpy()[1:] - want["Pr(>Chisq)"].to_numpy()[1:].astype(float))) < 1e-6


def test_lrt_refuses_different_data():
    df = jaxmm.datasets.load("sleepstudy")
    m1 = jaxmm.lmer("Reaction ~ Days + (1|Subject)", df)
    m2 = jaxmm.lmer("Reaction ~ Days + (1|Subject)", df.iloc[:150])
    with pytest.raises(jaxmm.DataError, match="same data"):
        jaxmm.anova(m1, m2)
    df2 = df.assign(Reaction=df.Reaction * 2)
    m3 = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", df2)
    with pytest.raises(jaxmm.DataError, match="different responses"):
        jaxmm.anova(m1, m3)
    with pytest.raises(jaxmm.ModelError, match="at least two"):
        jaxmm.inference.lrt(m1)


def test_lrt_without_refit_keeps_reml():
    a, b = fitted("sleep_int"), fitted("sleep_full")
    t = jaxmm.anova(a, b, refit=False)
    assert abs(t["logLik"].iloc[1] - b.loglik) < 1e-12
    assert "refitting" not in str(t)
    with pytest.raises(jaxmm.ModelError, match="REML and ML"):
        jaxmm.anova(a, fitted("sleep_full_ML"), refit=False)


@pytest.mark.parametrize("model_id", [m for m in LMM if "confint_Wald" in load_ref(m)])
def test_wald_intervals(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    want = pd.DataFrame(ref["confint_Wald"]).set_index("parm")
    got = m.confint(method="Wald")
    assert list(got.index) == list(want.index)
    assert list(got.columns) == ["2.5 %", "97.5 %"]
    fixed = list(m.fixef.index)
    w = want.loc[fixed].to_numpy(float)
    assert rel(got.loc[fixed].to_numpy(), w) < 1e-4
    assert got.drop(index=fixed).isna().all().all()
    tight = at_lme4_theta(model_id).confint(method="Wald")
    assert rel(tight.loc[fixed].to_numpy(), w) < 1e-6


def test_confint_selection_and_errors():
    m = fitted("sleep_full")
    assert list(m.confint(parm="beta_", method="Wald").index) == ["(Intercept)", "Days"]
    assert list(m.confint(parm=["sigma"], method="Wald").index) == ["sigma"]
    assert list(m.confint(level=0.9, method="Wald").columns) == ["5 %", "95 %"]
    with pytest.raises(jaxmm.ModelError, match="not a parameter"):
        m.confint(parm="nope", method="Wald")
    with pytest.raises(jaxmm.ModelError, match="method"):
        m.confint(method="bayes")
    with pytest.raises(jaxmm.ModelError, match="ddf"):
        m.anova(ddf="Welch")
    with pytest.raises(jaxmm.ModelError, match="type"):
        m.anova(type=2)


def test_varpar_hessian_matches_finite_differences():
    """The (theta, sigma) Hessian assembled from the profiled criterion equals finite
    differences of lmerTest's unprofiled deviance; vcov(beta)'s Jacobian likewise."""
    from jaxmm.core.solve import estimates_jit
    from jaxmm.precision import compute

    m = fitted("penicillin")
    vp = m._varpar
    n, p = m.nobs, m.p

    def dev(x):
        with compute():
            e = estimates_jit(jnp.asarray(x[:-1], jnp.float64), m.devfun.blocks, m.devfun.layout)
            s2 = x[-1] ** 2
            return float(e.ldL2 + e.ldRX2 + e.pwrss / s2 + (n - p) * np.log(2 * np.pi * s2))

    def covb(x):
        with compute():
            e = estimates_jit(jnp.asarray(x[:-1], jnp.float64), m.devfun.blocks, m.devfun.layout)
            Ri = np.linalg.inv(np.asarray(e.RX))
            return x[-1] ** 2 * Ri.T @ Ri

    x, k, h = vp.values, vp.values.size, 1e-4
    E = np.eye(k) * h
    H = np.array([[(dev(x + E[i] + E[j]) - dev(x + E[i] - E[j]) - dev(x - E[i] + E[j])
                    + dev(x - E[i] - E[j])) / (4 * h * h) for j in range(k)] for i in range(k)])
    assert np.max(np.abs(vp.hessian - H)) < 1e-5 * np.max(np.abs(H))
    J = np.array([(covb(x + E[i]) - covb(x - E[i])) / (2 * h) for i in range(k)])
    assert rel(vp.jac, J) < 1e-6


def test_estimates_are_differentiable_in_theta():
    """Regression: the PLS solution's derivative in theta (used by Satterthwaite) must read
    the Schur block's lower triangle only, as its value does."""
    from jaxmm.core.solve import estimates_jit
    from jaxmm.precision import compute

    m = fitted("penicillin")
    th = m.opt.theta
    with compute():
        f = lambda t: estimates_jit(t, m.devfun.blocks, m.devfun.layout).pwrss  # noqa: E731
        g = np.asarray(jax.grad(f)(jnp.asarray(th, jnp.float64)))
        # step 1e-5: pwrss (44) carries ~3e-11 of rounding jitter, which a 1e-6 step turns
        # into ~4e-6 of the derivative (8.4), at the edge of the tolerance
        fd = [(float(f(jnp.asarray(th + 1e-5 * e))) - float(f(jnp.asarray(th - 1e-5 * e)))) / 2e-5
              for e in np.eye(th.size)]
    assert rel(g, fd) < 1e-5


def test_summary_shows_satterthwaite_table():
    m = fitted("hr2")
    s = m.summary()
    assert "t-tests use Satterthwaite's method" in s and "Pr(>|t|)" in s and "Signif. codes" in s
    plain = m.summary(ddf="lme4")
    assert "Pr(>|t|)" not in plain and "['lmerMod']" in plain
    assert m.vcov_varpar.shape == (4, 4) and (m.stderr_varpar > 0).all()


def test_ml_refit_for_lrt_matches_direct_ml_fit():
    reml, ml = fitted("hr2"), fitted("hr2_ML")
    re = jaxmm.inference.refit_ml(reml)
    assert not re.reml and abs(re.deviance - ml.deviance) < 1e-6
    assert dataset_for(load_ref("hr2")) is not None


@pytest.mark.parametrize("model_id", [m for m in WITH_TERMS if "anova_KR_typeIII" in load_ref(m)])
def test_anova_kenward_roger_all_terms(model_id):
    """Every term of pbkrtest/lmerTest's KR type III table, including lower-order terms
    inside interactions (hr's Drug and Time, cake's recipe and temperature)."""
    ref, m = load_ref(model_id), fitted(model_id)
    want = pd.DataFrame(ref["anova_KR_typeIII"]).set_index("term")
    got = m.anova(type=3, ddf="Kenward-Roger")
    assert list(got.index) == list(want.index)
    for col in ("F value", "DenDF", "Sum Sq"):
        assert rel(got[col], want[col]) < 1e-4, col
    assert np.max(np.abs(got["Pr(>F)"] - want["Pr(>F)"])) < 1e-4
    kr = m.coef_table("Kenward-Roger")
    want_t = pd.DataFrame(ref["kenward_roger"]).set_index("term")
    assert rel(kr["df"], want_t["df"]) < 1e-4
    assert "Kenward-Roger's method" in m.summary(ddf="Kenward-Roger")


@pytest.mark.parametrize("model_id", ["sleep_full", "dyestuff2_ML"])
def test_confint_dispatch_profile_and_boot(model_id):
    """fit.confint routes to the profile (lme4's default) and to the batched bootstrap;
    rows line up with lme4's confint rows whatever the method."""
    ref, m = load_ref(model_id), fitted(model_id)
    want = pd.DataFrame(ref["confint_profile"]).set_index("parm")
    prof = m.confint()
    assert list(prof.index) == list(want.index)
    assert rel(prof.to_numpy()[want.to_numpy() != 0], want.to_numpy()[want.to_numpy() != 0]) < 1e-3
    boot = m.confint(method="boot", nsim=200, seed=1, parm="beta_")
    assert list(boot.index) == list(m.fixef.index)
    lo, hi = boot.iloc[:, 0].to_numpy(), boot.iloc[:, 1].to_numpy()
    assert (lo < m.fixef.to_numpy()).all() and (m.fixef.to_numpy() < hi).all()
