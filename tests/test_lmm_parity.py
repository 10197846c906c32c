"""Parity with lme4 for every linear model in the reference fixtures (REML and ML).

Tolerances are the core-engine issue's: criterion within 1e-6 relative (or lower than
lme4's), beta and standard errors 1e-4 relative, sigma and variance components 1e-3
relative, conditional modes 1e-3 absolute on the small data sets. Two documented
exceptions, both where lme4 itself stopped short of the optimum (our criterion is lower):
star/star_ML (lme4 warned of non-convergence, max|grad| 0.0025) and pixel (a flat
direction: lme4's criterion is 1e-10 relative above ours). For those, the comparison at
lme4's own theta below checks the computations at tight tolerance instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import fitted, fixture_ids, load_ref

LMM = fixture_ids("LMM")
SMALL = [m for m in LMM if not m.startswith(("star", "insteval"))]
LARGE = [m for m in LMM if m.startswith(("star", "insteval"))]
UNCONVERGED_LME4 = {"star", "star_ML"}  # lme4 warned: "Model failed to converge"


def criterion(ref):
    return ref["REMLcrit"] if ref["REML"] else ref["deviance"]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size == 0:
        return 0.0
    return np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))


def test_every_lmm_fixture_is_covered():
    assert len(LMM) == 30  # 15 models x REML/ML


@pytest.mark.parametrize("model_id", LMM)
def test_criterion(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    crit = criterion(ref)
    # never worse than lme4 by more than 1e-6 relative ...
    assert m.objective <= crit + 1e-6 * abs(crit)
    # ... and equal to it within 1e-6 unless lme4 did not converge
    if model_id not in UNCONVERGED_LME4:
        assert abs(m.objective - crit) <= 1e-6 * abs(crit)
    assert m.opt.converged, m.opt.warnings
    assert m.nobs == ref["nobs"]
    assert m.ngroups == ref["ngroups"]
    assert m.is_singular == ref["isSingular"]
    assert np.isclose(m.loglik, ref["logLik"], rtol=1e-6)
    assert np.isclose(m.aic, ref["AIC"], rtol=1e-6)
    assert np.isclose(m.bic, ref["BIC"], rtol=1e-6)


@pytest.mark.parametrize("model_id", LMM)
def test_fixed_effects(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    assert list(m.fixef.index) == list(ref["fixef"])
    tol = 5e-4 if model_id in UNCONVERGED_LME4 else 1e-4
    assert rel(m.fixef.values, list(ref["fixef"].values())) < tol
    assert rel(m.stderr.values, list(ref["stderr"].values())) < tol
    V = np.asarray(ref["vcov"]["values"])
    assert np.max(np.abs(m.vcov.to_numpy() - V)) < tol * np.max(np.abs(V))


@pytest.mark.parametrize("model_id", LMM)
def test_variance_components(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    assert rel(m.sigma, ref["sigma"]) < 1e-3
    vc, rvc = m.varcorr(), pd.DataFrame(ref["VarCorr"])
    assert list(vc["grp"]) == list(rvc["grp"])
    assert list(vc["var1"].fillna("")) == list(rvc["var1"].fillna(""))
    assert list(vc["var2"].fillna("")) == list(rvc["var2"].fillna(""))
    big = np.abs(rvc["vcov"].to_numpy()) > 1e-8
    assert rel(vc["vcov"].to_numpy()[big], rvc["vcov"].to_numpy()[big]) < 1e-3
    assert np.all(np.abs(vc["vcov"].to_numpy()[~big]) < 1e-6)  # zero variances stay zero
    assert list(m.theta.index) == list(ref["theta"])


@pytest.mark.parametrize("model_id", SMALL)
def test_conditional_modes(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    r, rr = m.ranef(), pd.DataFrame(ref["ranef"])
    assert list(zip(r.grpvar, r.term, r.grp)) == list(zip(rr.grpvar, rr.term, rr.grp))
    tol = 2e-3 if model_id.startswith("pixel") else 1e-3
    assert np.max(np.abs(r.condval.to_numpy() - rr.condval.to_numpy())) < tol
    ok = rr.condsd.to_numpy() > 0
    assert rel(r.condsd.to_numpy()[ok], rr.condsd.to_numpy()[ok]) < 1e-3
    assert np.all(np.abs(r.condsd.to_numpy()[~ok]) < 1e-6)


@pytest.mark.parametrize("model_id", SMALL + ["star", "star_ML"])
def test_at_lme4_theta(model_id):
    """At lme4's own theta, every derived quantity matches lme4 tightly."""
    import jaxmm
    from jaxmm.results.lmm import LinearMixedModel

    ref, m = load_ref(model_id), fitted(model_id)
    theta = np.array(list(ref["theta"].values()))
    assert abs(m.devfun(theta) - criterion(ref)) < 1e-8 * abs(criterion(ref))
    opt = type(m.opt)(**{**m.opt.__dict__, "theta": theta, "warnings": []})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        at = LinearMixedModel(m.design, m.devfun, opt)
    assert rel(at.fixef.values, list(ref["fixef"].values())) < 1e-7
    assert rel(at.stderr.values, list(ref["stderr"].values())) < 1e-6
    assert rel(at.sigma, ref["sigma"]) < 1e-7
    fit20 = np.asarray(ref["fitted_first20"])
    assert np.max(np.abs(at.fitted()[:20] - fit20)) < 1e-6 * np.max(np.abs(fit20))
    r, rr = at.ranef(), pd.DataFrame(ref["ranef"])
    r = rr[["grpvar", "term", "grp"]].merge(r, on=["grpvar", "term", "grp"], how="left")
    assert np.max(np.abs(r.condval.to_numpy() - rr.condval.to_numpy())) < 1e-6
    ok = rr.condsd.to_numpy() > 0
    assert rel(r.condsd.to_numpy()[ok], rr.condsd.to_numpy()[ok]) < 1e-6


@pytest.mark.parametrize("model_id", LARGE)
def test_large_modes_subset(model_id):
    """star and InstEval: the fixture holds the first levels of each factor only."""
    ref, m = load_ref(model_id), fitted(model_id)
    rr = pd.DataFrame(ref["ranef"])
    r = rr[["grpvar", "term", "grp"]].merge(m.ranef(), on=["grpvar", "term", "grp"], how="left")
    assert not r.condval.isna().any()
    scale = np.max(np.abs(rr.condval.to_numpy()))
    tol = 5e-4 if model_id in UNCONVERGED_LME4 else 1e-4
    assert np.max(np.abs(r.condval.to_numpy() - rr.condval.to_numpy())) < tol * scale
    if "condsd" in rr:  # lme4 skipped condVar on InstEval
        assert rel(r.condsd.to_numpy(), rr.condsd.to_numpy()) < 1e-3
