"""Regressions found in review: silent wrong results and raw tracebacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import jaxmm
import jaxmm.results.persist  # noqa: F401  (submodules the tests call through the package)
import jaxmm.results.tidy  # noqa: F401
from conftest import fitted


def test_tidy_profile_intervals_line_up_by_name():
    m = fitted("sleep_full")
    t = m.tidy(conf_int=True, conf_method="profile").set_index("term")
    ci = m.confint()
    assert np.allclose(t.loc["sd__Days", ["conf.low", "conf.high"]].to_numpy(float),
                       ci.loc["sd_Days|Subject"].to_numpy())
    assert np.allclose(t.loc["cor__(Intercept).Days", ["conf.low", "conf.high"]].to_numpy(float),
                       ci.loc["cor_Days.(Intercept)|Subject"].to_numpy())
    assert np.allclose(t.loc["sd__Observation", ["conf.low", "conf.high"]].to_numpy(float),
                       ci.loc["sigma"].to_numpy())


def test_predict_refuses_unseen_values_of_a_numeric_factor():
    sl = jaxmm.datasets.load("sleepstudy")
    m = jaxmm.lmer("Reaction ~ factor(Days) + (1|Subject)", sl)
    ok = m.predict(pd.DataFrame({"Days": [0, 2], "Subject": ["308", "308"]}), re_form="~0")
    assert np.allclose(ok, m.fixef.iloc[0] + np.array([0.0, m.fixef.iloc[2]]))
    with pytest.raises(jaxmm.DataError, match="not seen"):
        m.predict(pd.DataFrame({"Days": [11, 0, 2.5], "Subject": ["308"] * 3}), re_form="~0")


def test_lmm_residual_and_fitted_types():
    m = fitted("sleep_full")
    raw = m.design.y - m.fitted()
    for kind in ("response", "pearson", "working", "deviance"):
        assert np.allclose(m.residuals(kind), raw)
    assert np.allclose(m.residuals(scaled=True), raw / m.sigma)
    assert np.allclose(m.fitted("link"), m.fitted())
    assert np.allclose(m.predict(type="response"), m.fitted())
    with pytest.raises(jaxmm.DataError, match="scaled=True"):
        m.residuals(True)
    with pytest.raises(jaxmm.DataError, match="residuals"):
        m.residuals("studentized")


def test_glmm_predict_needs_the_offset_argument_again():
    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({"g": pd.Categorical(rng.integers(0, 20, n).astype(str)), "x": rng.normal(size=n),
                       "expo": rng.uniform(1, 5, n)})
    df["y"] = rng.poisson(df.expo * np.exp(0.3 * df.x))
    g = jaxmm.glmer("y ~ x + (1|g)", df, "poisson", offset=np.log(df.expo))
    with pytest.raises(jaxmm.DataError, match="offset"):
        g.predict(df)
    assert np.allclose(g.predict(df, offset=np.log(df.expo)), g.fitted("link"))
    with pytest.raises(jaxmm.DataError, match="3 values"):
        g.predict(df, offset=np.ones(3))


def test_lmm_only_functions_refuse_a_glmm_clearly():
    cb = jaxmm.datasets.load("cbpp")
    g = jaxmm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", cb, family="binomial")
    calls = [
        lambda: jaxmm.anova(g), lambda: jaxmm.inference.lme4_anova(g), lambda: jaxmm.inference.varpar(g),
        lambda: jaxmm.inference.confint(g, method="Wald"), lambda: jaxmm.batch.bootstrap(g, 10),
        lambda: jaxmm.batch.simulate(g, 2), lambda: jaxmm.batch.refit_many(g, np.zeros((56, 2))),
        lambda: jaxmm.results.tidy.tidy(g), lambda: jaxmm.results.tidy.glance(g),
        lambda: jaxmm.results.persist.save(g, "/tmp/x.json"),
    ]
    for call in calls:
        with pytest.raises(jaxmm.ModelError, match="linear mixed model"):
            call()
    assert abs(float(jaxmm.anova(g, refit=True, m0=jaxmm.glmer(
        "cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cb, family="binomial"))["Chisq"].iloc[1]) - 25.6) < 0.1


def test_streamed_fit_summary_and_lrt_messages():
    sl = jaxmm.datasets.load("sleepstudy")
    chunks = [sl.iloc[:100], sl.iloc[100:]]
    ms = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", chunks)
    assert "not available (fitted from streamed data)" in ms.summary()
    m0 = jaxmm.lmer("Reaction ~ Days + (1|Subject)", chunks)
    with pytest.raises(jaxmm.DataError, match="streamed data"):
        jaxmm.anova(m0, ms)


def test_varcorr_uses_one_missing_marker():
    vc = fitted("dyestuff").varcorr()
    assert vc.var2.isna().all() and vc.var1.isna().iloc[-1]
    assert all(isinstance(v, float) for v in vc.var2)


def test_cli_rejects_flags_for_the_other_model_kind():
    from jaxmm.cli import main

    with pytest.raises(SystemExit):
        main(["fit", "Reaction ~ Days + (1|Subject)", "--data", "sleepstudy", "--nagq", "5"])
    with pytest.raises(SystemExit):
        main(["fit", "incidence ~ 1 + (1|herd)", "--data", "cbpp", "--family", "poisson", "--ml"])
