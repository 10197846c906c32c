"""Per-call caches (parsed formulas, formula parts, compiled programs) never serve stale data:
a DataFrame changed in place, or data with other factor levels, gives the new fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm.design import build_design
from jaxmm.design.matrix import part_key
from jaxmm.errors import DataError, FormulaError
from jaxmm.formula import parse_formula


def test_parse_cache_returns_equal_results_and_still_raises():
    a = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert parse_formula("Reaction ~ Days + (Days | Subject)") == a
    for _ in range(2):  # errors are not cached away
        with pytest.raises(FormulaError):
            parse_formula("y ~ x + (1 | ")


def test_part_key_identifies_equal_terms_only():
    assert part_key("Days") == part_key("1 + Days")
    assert part_key("Days") != part_key("0 + Days")
    assert part_key("a + b") != part_key("b + a")  # R's variable order differs


def test_lmer_refit_after_in_place_change():
    df = jaxmm.datasets.load("sleepstudy").copy()
    f = "Reaction ~ Days + (Days | Subject)"
    m1 = jaxmm.lmer(f, df)
    df["Reaction"] = df["Reaction"] * 2.0 + 5.0  # in place: same object
    m2 = jaxmm.lmer(f, df)
    fresh = jaxmm.lmer(f, df.copy())
    assert not np.allclose(m1.fixef, m2.fixef)
    np.testing.assert_allclose(m2.fixef, fresh.fixef, rtol=1e-10)
    np.testing.assert_allclose(m2.fixef, 2.0 * m1.fixef + [5.0, 0.0], rtol=1e-5)
    df.loc[df.index[:10], "Days"] = 0.0  # a covariate changed in place
    m3 = jaxmm.lmer(f, df)
    np.testing.assert_allclose(m3.fixef, jaxmm.lmer(f, df.copy()).fixef, rtol=1e-10)
    assert m3.design.X[:10, 1].tolist() == [0.0] * 10


def test_glmer_refit_after_in_place_change():
    df = jaxmm.datasets.load("cbpp").copy()
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    g1 = jaxmm.glmer(f, df, family="binomial")
    df["incidence"] = np.minimum(df["incidence"] + 1, df["size"])
    g2 = jaxmm.glmer(f, df, family="binomial")
    fresh = jaxmm.glmer(f, df.copy(), family="binomial")
    assert not np.allclose(g1.fixef, g2.fixef)
    np.testing.assert_allclose(g2.fixef, fresh.fixef, rtol=1e-8)
    np.testing.assert_allclose(g2.deviance, fresh.deviance, rtol=1e-10)


def _frame(levels: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 120
    g = pd.Categorical(rng.choice(levels, n), categories=levels)
    grp = pd.Categorical([f"s{i % 12}" for i in range(n)])
    return pd.DataFrame({"y": rng.normal(size=n) + (np.asarray(g.codes) * 0.5),
                         "f": g, "grp": grp})


def test_other_factor_levels_are_not_served_a_stale_spec():
    f = "y ~ f + (1 | grp)"
    m1 = jaxmm.lmer(f, _frame(["a", "b", "c"]))
    m2 = jaxmm.lmer(f, _frame(["a", "b", "c", "d"]))
    assert m1.design.x_names == ("(Intercept)", "fb", "fc")
    assert m2.design.x_names == ("(Intercept)", "fb", "fc", "fd")
    # unused levels are dropped, in place as well
    df = _frame(["a", "b", "c", "d"])
    df["f"] = pd.Categorical(np.where(df["f"] == "d", "c", df["f"].astype(str)),
                             categories=["a", "b", "c", "d"])
    m3 = jaxmm.lmer(f, df)
    assert m3.design.x_names == ("(Intercept)", "fb", "fc")
    # the new levels are known to predict: the model built on 3 levels refuses "d"
    with pytest.raises(DataError):
        m1.predict(_frame(["a", "b", "c", "d"]).assign(f=lambda d: d["f"].astype(str)
                                                       .where(d["f"] != "a", "d")))


def test_slope_block_shared_with_fixed_part_matches_separate_build():
    df = jaxmm.datasets.load("sleepstudy")
    d = build_design("Reaction ~ Days + (Days | Subject)", df)
    d2 = build_design("Reaction ~ 1 + (1 + Days | Subject)", df)  # built on its own
    np.testing.assert_array_equal(d.terms[0].Xt, d2.terms[0].Xt)
    assert d.terms[0].cnames == ("(Intercept)", "Days")
