"""predict/fitted against lme4's fitted values; re_form and new levels."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import dataset_for, fitted, load_ref

MODELS = ["sleep_full", "sleep_zerocorr", "penicillin", "pastes", "hr2", "dyestuff2", "cake"]


@pytest.mark.parametrize("model_id", MODELS)
def test_predict_matches_lme4_fitted(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    want = np.asarray(ref["fitted_first20"])
    assert np.allclose(m.predict()[:20], want, rtol=1e-5, atol=1e-8)
    assert np.allclose(m.fitted()[:20], want, rtol=1e-5, atol=1e-8)
    # on new data that are the original rows
    df = dataset_for(ref).iloc[m.design.rows[:20]]
    assert np.allclose(m.predict(df), want, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("model_id", ["sleep_full", "cake", "penicillin"])
def test_population_prediction_is_X_beta(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    Xb = m.design.X @ m.fixef.to_numpy()
    assert np.allclose(m.predict(re_form="~0"), Xb, rtol=1e-12)
    assert np.allclose(m.predict(re_form=" ~ 0 "), Xb, rtol=1e-12)
    df = dataset_for(ref).iloc[m.design.rows]
    assert np.allclose(m.predict(df, re_form="~0"), Xb, rtol=1e-12)


def test_re_form_selects_terms():
    m = fitted("penicillin")
    plate = [k for k, t in enumerate(m.terms) if t.group == "plate"][0]
    b = m._modes[plate][:, 0][m.terms[plate].index]
    Xb = m.design.X @ m.fixef.to_numpy()
    assert np.allclose(m.predict(re_form="~(1|plate)"), Xb + b)
    both = m.predict(re_form="~(1|plate) + (1|sample)")
    assert np.allclose(both, m.predict())
    with pytest.raises(jaxmm.ModelError, match="not a random-effects term"):
        m.predict(re_form="~(1|batch)")
    with pytest.raises(jaxmm.ModelError, match="re_form"):
        m.predict(re_form=3)


def test_new_levels():
    m = fitted("sleep_full")
    new = pd.DataFrame({"Days": [0.0, 3.0], "Subject": ["308", "999"]})
    with pytest.raises(jaxmm.DataError, match="999"):
        m.predict(new)
    p = m.predict(new, allow_new_levels=True)
    ranef = m.ranef_dict()["Subject"].loc["308"]
    assert np.isclose(p[0], m.fixef["(Intercept)"] + ranef["(Intercept)"])
    assert np.isclose(p[1], m.fixef["(Intercept)"] + 3 * m.fixef["Days"])
    with pytest.raises(jaxmm.DataError):
        m.predict(pd.DataFrame({"Subject": ["308"]}))  # Days missing
    # a new level in a term that re_form leaves out is fine
    assert np.allclose(m.predict(new, re_form="~0"), m.fixef["(Intercept)"] + new["Days"] * m.fixef["Days"])


def test_new_level_only_in_excluded_term():
    m = fitted("penicillin")
    df = dataset_for(load_ref("penicillin")).head(2).copy()
    df["sample"] = df["sample"].astype(str)
    df.loc[df.index[1], "sample"] = "Z"
    with pytest.raises(jaxmm.DataError, match="'Z'"):
        m.predict(df)
    p = m.predict(df, re_form="~(1|plate)")
    assert np.allclose(p, m.predict(re_form="~(1|plate)")[:2])
