"""Tidy tables (broom.mixed), notebook display, and saved fits."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import dataset_for, fitted, load_ref


def test_tidy_hr1_matches_lme4():
    ref, m = load_ref("hr1"), fitted("hr1")
    t = m.tidy(ddf="lme4")
    fx = t[t.effect == "fixed"].set_index("term")
    want = pd.DataFrame(ref["coef_table"]).set_index("term")
    assert list(fx.index) == list(want.index)
    for got, col in (("estimate", "Estimate"), ("std.error", "Std. Error"), ("statistic", "t value")):
        assert np.allclose(fx[got], want[col], rtol=1e-5), col
    rp = t[t.effect == "ran_pars"]
    vc = pd.DataFrame(ref["VarCorr"])
    assert rp.group.tolist() == vc.grp.tolist()
    assert rp.term.tolist() == ["sd__(Intercept)", "sd__Observation"]
    assert np.allclose(rp.estimate, vc.sdcor, rtol=1e-5)


def test_tidy_columns_correlations_and_intervals():
    m = fitted("sleep_full")
    t = m.tidy(conf_int=True)
    assert list(t.columns) == ["effect", "group", "term", "estimate", "std.error", "statistic", "df",
                               "p.value", "conf.low", "conf.high"]
    assert "cor__(Intercept).Days" in t.term.tolist()
    days = t.set_index("term").loc["Days"]
    assert days["conf.low"] < days["estimate"] < days["conf.high"]
    assert abs(days["df"] - 17.0) < 0.01 and days["p.value"] < 1e-4
    g = m.glance().iloc[0]
    assert g["nobs"] == 180 and g["df.residual"] == 174
    assert abs(g["REMLcrit"] - m.reml_criterion) < 1e-12 and np.isnan(g["deviance"])
    assert abs(fitted("sleep_full_ML").glance().iloc[0]["deviance"] - fitted("sleep_full_ML").deviance) < 1e-12


def test_save_load_round_trip(tmp_path):
    for mid in ("hr2", "penicillin_ML"):
        ref, m = load_ref(mid), fitted(mid)
        df = dataset_for(ref)
        path = m.save(tmp_path / f"{mid}.json")
        doc = json.loads(path.read_text())
        assert doc["format"] == "jaxmm-fit" and doc["version"] == 1 and path.stat().st_size < 20000
        m2 = jaxmm.load(path, df)
        assert np.array_equal(m2.fixef.to_numpy(), m.fixef.to_numpy())
        assert np.array_equal(m2.theta_vector, m.theta_vector)
        assert m2.sigma == m.sigma and m2.reml == m.reml
        assert m2.summary() == m.summary()


def test_load_refuses_other_data_and_files(tmp_path):
    m = fitted("sleep_full")
    df = jaxmm.datasets.load("sleepstudy")
    path = m.save(tmp_path / "fit.json")
    changed = df.copy()
    changed.loc[0, "Reaction"] += 1.0
    with pytest.raises(jaxmm.DataError, match="data differ"):
        jaxmm.load(path, changed)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something"}))
    with pytest.raises(jaxmm.JaxmmError, match="not a saved jaxmm fit"):
        jaxmm.load(bad, df)
    doc = json.loads(path.read_text())
    doc["version"] = 99
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps(doc))
    with pytest.raises(jaxmm.JaxmmError, match="newer jaxmm"):
        jaxmm.load(newer, df)


def test_html_display():
    m = fitted("sleep_full")
    h = m._repr_html_()
    assert h.startswith("<pre>") and "Random effects:" in h
    a = m.anova()._repr_html_()
    assert "Satterthwaite" in a and "<table" in a and "Days" in a
    lr = jaxmm.anova(fitted("sleep_int"), m)._repr_html_()
    assert "refitting model(s) with ML" in lr and "Chisq" in lr
