"""Likelihood profiles and profile confidence intervals against lme4's
``confint(m, method = "profile")`` (fixtures: sleep_*, dyestuff*, REML and ML).

lme4 interpolates its profile trace with a spline; we solve zeta(v) = +-1.96 exactly, so
the comparison is at 1e-3 relative (the largest difference, dyestuff2's intercept, is
about 2e-4, where lme4's spline crosses a kink of the profile as theta leaves 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import fitted, load_ref
from jaxmm.errors import ModelError
from jaxmm.inference.profile import confint_profile, percent_labels, profile

PROFILED = [
    "sleep_full", "sleep_full_ML", "sleep_int", "sleep_int_ML", "sleep_zerocorr",
    "sleep_zerocorr_ML", "dyestuff", "dyestuff_ML", "dyestuff2", "dyestuff2_ML",
]


def ref_table(model_id: str) -> pd.DataFrame:
    rows = load_ref(model_id)["confint_profile"]
    return pd.DataFrame(rows).set_index("parm")[["2.5 %", "97.5 %"]].astype(float)


@pytest.mark.parametrize("model_id", PROFILED)
def test_confint_profile_matches_lme4(model_id):
    ref = ref_table(model_id)
    ci = confint_profile(fitted(model_id))
    assert list(ci.index) == list(ref.index)
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    a, b = ci.to_numpy(), ref.to_numpy()
    zero = b == 0
    assert np.all(a[zero] == 0.0)  # dyestuff2: the lower sd limit is exactly 0
    rel = np.abs(a[~zero] - b[~zero]) / np.abs(b[~zero])
    assert rel.max() < 1e-3, dict(zip(ci.index, np.abs(a - b).max(axis=1)))


def test_profile_traces_sleepstudy():
    m = fitted("sleep_full")
    pr = m.profile()
    tr = pr.traces
    names = list(ref_table("sleep_full").index)
    assert list(tr.columns[:3]) == ["param", "value", "zeta"]
    assert list(tr.columns[3:]) == names
    assert list(tr["param"].unique()) == names
    for name, g in tr.groupby("param", sort=False):
        g = g.sort_values("value")
        assert np.all(np.diff(g["zeta"]) > 0), name  # monotone
        at = g[g["zeta"] == 0.0]
        assert len(at) == 1 and np.isclose(at["value"].iloc[0], pr.estimates[name]), name
        assert np.allclose(g["value"], g[name])  # the profiled column is the value
        # traces reach lme4's cutoff sqrt(qchisq(0.99, 6)) = 4.1 on both sides, or the
        # bound (the correlation reaches +1 at zeta ~ 3)
        assert g["zeta"].min() < -4.0, name
        assert g["zeta"].max() > 4.0 or (name.startswith("cor_") and g["value"].max() == 1.0), name
    # the confint from the profile equals confint_profile and lme4's
    ci = pr.confint()
    np.testing.assert_allclose(ci.to_numpy(), confint_profile(m).to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(ci.to_numpy(), ref_table("sleep_full").to_numpy(), rtol=1e-3)


def test_profile_zeta_at_points_is_consistent():
    # at the limits, zeta is +-1.96; between estimate and limit, |zeta| < 1.96
    m = fitted("dyestuff")
    pr = profile(m, which="sigma")
    tr = pr.traces
    lo, hi = pr.confint().loc["sigma"]
    inside = tr[(tr["value"] > lo) & (tr["value"] < hi)]
    outside = tr[(tr["value"] < lo) | (tr["value"] > hi)]
    assert np.all(np.abs(inside["zeta"]) < 1.96)
    assert np.all(np.abs(outside["zeta"]) > 1.95)


def test_boundary_fit_profile_starts_at_zero():
    m = fitted("dyestuff2")
    pr = profile(m, which="sd_(Intercept)|Batch")
    g = pr.traces.sort_values("value")
    assert g["value"].iloc[0] == 0.0 and g["zeta"].iloc[0] == 0.0
    assert np.all(np.diff(g["zeta"]) > 0)


def test_which_selects():
    m = fitted("sleep_full")
    ci = confint_profile(m, which=["sigma", "Days"])
    assert list(ci.index) == ["sigma", "Days"]
    full = ref_table("sleep_full")
    np.testing.assert_allclose(ci.to_numpy(), full.loc[["sigma", "Days"]].to_numpy(), rtol=1e-3)
    assert list(confint_profile(m, which="beta_").index) == ["(Intercept)", "Days"]
    assert list(confint_profile(m, which=[0]).index) == ["sd_(Intercept)|Subject"]
    pr = profile(m, which="theta_")
    assert pr.params == list(full.index[:4])
    assert set(pr.traces["param"]) == set(full.index[:4])


def test_level_names_columns_and_widens():
    m = fitted("sleep_int")
    c90 = confint_profile(m, level=0.9, which="Days")
    c99 = confint_profile(m, level=0.99, which="Days")
    assert list(c90.columns) == ["5 %", "95 %"] and list(c99.columns) == ["0.5 %", "99.5 %"]
    assert c99.iloc[0, 0] < c90.iloc[0, 0] < c90.iloc[0, 1] < c99.iloc[0, 1]
    assert percent_labels(0.95) == ["2.5 %", "97.5 %"]


def test_bad_input():
    m = fitted("dyestuff")
    with pytest.raises(ModelError, match="unknown parameter"):
        confint_profile(m, which="Days")
    with pytest.raises(ModelError, match="level"):
        confint_profile(m, level=1.5)
    with pytest.raises(ModelError, match="out of range"):
        profile(m, which=[7])
    with pytest.raises(ModelError, match="linear mixed model"):
        confint_profile(object())


def test_three_column_term_limits_are_exact():
    """A 3 x 3 term exercises the general sd/cor maps (rows with several entries): at our
    limits, an independent constrained optimizer (SLSQP over theta and log sigma with the
    parameter as an equality constraint) finds the profiled deviance 1.96^2 above the
    minimum."""
    import jax
    import jax.numpy as jnp
    from scipy.optimize import minimize

    import jaxmm
    from jaxmm.covariance import tril_colmajor
    from jaxmm.inference.profile_root import Profiler
    from jaxmm.inference.profile_solve import deviance_at
    from jaxmm.precision import compute

    m = jaxmm.lmer("Reaction ~ Days + (Days + I(Days^2) | Subject)", jaxmm.datasets.load("sleepstudy"),
                   reml=False)
    which = ["cor_I(Days^2).Days|Subject", "sd_I(Days^2)|Subject"]
    ci = confint_profile(m, which=which)
    P = Profiler(m)
    lay, bl = m.devfun.layout, m.devfun.blocks
    r, c = tril_colmajor(3)

    def sd_cor(x):
        T = np.zeros((3, 3))
        T[r, c] = x[:6]
        S = T @ T.T
        sd = np.sqrt(np.diag(S))
        return np.exp(x[6]) * sd, S / np.outer(sd, sd)

    constraint = {
        which[0]: lambda x, v: sd_cor(x)[1][2, 1] - v,
        which[1]: lambda x, v: sd_cor(x)[0][2] - v,
    }
    with compute():
        dev = jax.jit(lambda th, ls: deviance_at(th, jnp.exp(2 * ls), False, bl, lay))
        x0 = np.append(P.theta, np.log(P.sigma))
        for name in which:
            for v in ci.loc[name]:
                res = minimize(lambda x: float(dev(jnp.asarray(x[:6]), x[6])), x0, method="SLSQP",
                               constraints=[{"type": "eq", "fun": constraint[name], "args": (v,)}],
                               options={"maxiter": 500, "ftol": 1e-12})
                assert abs(constraint[name](res.x, v)) < 1e-7
                assert abs(res.fun - P.base - 1.959963984540054**2) < 2e-4, (name, v, res.fun - P.base)
