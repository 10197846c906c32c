"""Kenward-Roger parity with pbkrtest 0.5.2 / lmerTest 3.1-3 on every REML fixture carrying
``kenward_roger``.

Tolerances: df, Std. Error, the adjusted vcov and the anova F / DenDF within 1e-4 relative,
p-values within 1e-4 absolute. Our REML optimum differs from lme4's by up to ~2e-4 in theta
(pixel, penicillin), which moves vcov itself by ~1e-4; evaluated at lme4's own theta the same
quantities agree to 1e-8 (``test_at_lme4_theta``), so the remaining gap is the fit, not KR.
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import fitted, fixture_ids, load_ref
from jaxmm.errors import ModelError
from jaxmm.inference import _kr_qspace
from jaxmm.inference.kenward_roger import KRFTest, KRTTest, kr_coef_table, kr_contrast, kr_state

KR_MODELS = [m for m in fixture_ids("LMM") if "kenward_roger" in load_ref(m)]

# model -> {anova term: its coefficients}; None = every interaction coefficient.
# Highest-order terms (and terms contained in none) have type-III contrasts that select
# their own coefficients; hr's Drug is tested at Time = 0 as lmerTest does for a covariate.
ANOVA_CASES = [
    ("sleep_full", "Days", ["Days"]),
    ("sleep_int", "Days", ["Days"]),
    ("sleep_zerocorr", "Days", ["Days"]),
    ("hr1", "Time:Drug", ["Time:Drugb", "Time:Drugp"]),
    ("hr2", "Time:Drug", ["Time:Drugb", "Time:Drugp"]),
    ("hr3", "Time:Drug", ["Time:Drugb", "Time:Drugp"]),
    ("hr1", "Drug", ["Drugb", "Drugp"]),
    ("hr2", "Drug", ["Drugb", "Drugp"]),
    ("hr3", "Drug", ["Drugb", "Drugp"]),
    ("hr2", "baseHR", ["baseHR"]),
    ("cake", "recipe:temperature", None),
    ("pixel", "I(day^2)", ["I(day^2)"]),
    ("pixel", "day", ["day"]),
]


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.max(np.abs(a - b) / np.abs(b)))


def vcov_err(V, Vref):
    """Largest difference scaled by sqrt(Vref_ii Vref_jj): relative error on the diagonal,
    correlation scale off it (some off-diagonal entries are zero up to rounding)."""
    d = np.sqrt(np.diag(Vref))
    return float(np.max(np.abs(V - Vref) / np.outer(d, d)))


def ref_vcov_kr(ref) -> pd.DataFrame:
    """The fixture's adjusted vcov (a 1 x 1 matrix is stored with scalar names)."""
    v = ref["vcov_KR_adjusted"]
    names = list(np.atleast_1d(v["rownames"]))
    return pd.DataFrame(np.asarray(v["values"], float).reshape(len(names), -1), index=names, columns=names)


def at_theta(m, theta):
    from jaxmm.results.lmm import LinearMixedModel

    opt = type(m.opt)(**{**m.opt.__dict__, "theta": np.asarray(theta, float), "warnings": []})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return LinearMixedModel(m.design, m.devfun, opt)


def test_every_kr_fixture_is_covered():
    assert sorted(KR_MODELS) == sorted([
        "cake", "dyestuff", "dyestuff2", "hr1", "hr2", "hr3", "pastes", "penicillin", "pixel",
        "sleep_full", "sleep_int", "sleep_zerocorr",
    ])


@pytest.mark.parametrize("model_id", KR_MODELS)
def test_coefficients(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    tab = kr_coef_table(m._kr_state)
    kr = pd.DataFrame(ref["kenward_roger"]).set_index("term")
    assert list(tab.index) == list(kr.index)
    assert rel(tab["Estimate"], kr["Estimate"]) < 1e-4
    assert rel(tab["Std. Error"], kr["Std. Error"]) < 1e-4
    assert rel(tab["df"], kr["df"]) < 1e-4
    assert rel(tab["t value"], kr["t value"]) < 1e-4
    assert np.max(np.abs(tab["Pr(>|t|)"] - kr["Pr(>|t|)"])) < 1e-4


@pytest.mark.parametrize("model_id", KR_MODELS)
def test_vcov_adjusted(model_id):
    ref, m = load_ref(model_id), fitted(model_id)
    V, Vref = m.vcov_kr, ref_vcov_kr(ref)
    assert list(V.index) == list(Vref.index) and list(V.columns) == list(Vref.columns)
    Vref = Vref.to_numpy()
    assert vcov_err(V.to_numpy(), Vref) < 1e-4
    assert rel(np.diag(V), np.diag(Vref)) < 1e-4
    np.testing.assert_array_equal(V.to_numpy(), V.to_numpy().T)


@pytest.mark.parametrize("model_id", KR_MODELS)
def test_at_lme4_theta(model_id):
    """At lme4's theta the KR computations agree with pbkrtest to rounding."""
    ref, m = load_ref(model_id), fitted(model_id)
    st = kr_state(at_theta(m, list(ref["theta"].values())))
    assert vcov_err(st.phi_adj, ref_vcov_kr(ref).to_numpy()) < 1e-8
    tab = kr_coef_table(st)
    kr = pd.DataFrame(ref["kenward_roger"])
    assert rel(tab["df"], kr["df"]) < 1e-8
    assert rel(tab["Std. Error"], kr["Std. Error"]) < 1e-8


@pytest.mark.parametrize(("model_id", "term", "cols"), ANOVA_CASES, ids=[f"{a}-{b}" for a, b, _ in ANOVA_CASES])
def test_anova_terms(model_id, term, cols):
    ref, m = load_ref(model_id), fitted(model_id)
    xn = list(m.design.x_names)
    cols = [c for c in xn if ":" in c] if cols is None else cols
    L = np.eye(len(xn))[[xn.index(c) for c in cols]]
    row = next(r for r in ref["anova_KR_typeIII"] if r["term"] == term)
    assert row["NumDF"] == len(cols)
    r = kr_contrast(m._kr_state, L)
    if len(cols) == 1:  # a t test; lmerTest's F is its square (KR's F scaling is 1 here)
        assert isinstance(r, KRTTest)
        F, ddf = r.t_value**2, r.df
    else:
        assert isinstance(r, KRFTest) and r.num_df == len(cols)
        F, ddf = r.f_value, r.den_df
        assert rel(r.sum_sq, row["Sum Sq"]) < 1e-4
        assert rel(r.mean_sq, row["Mean Sq"]) < 1e-4
    assert rel(F, row["F value"]) < 1e-4
    assert rel(ddf, row["DenDF"]) < 1e-4
    assert abs(r.p_value - row["Pr(>F)"]) < 1e-4


def test_singular_fit_df():
    """dyestuff2: theta = 0, pbkrtest's df is exactly the 5 between-batch df."""
    m = fitted("dyestuff2")
    assert m.opt.theta[0] == 0.0
    r = kr_contrast(m._kr_state, [1.0])
    assert abs(r.df - 5.0) < 1e-8


def test_ml_fit_refused():
    m = fitted("sleep_full_ML")
    with pytest.raises(ModelError, match="reml=True"):
        kr_state(m)
    with pytest.raises(ModelError, match="REML"):
        m.vcov_kr


def test_size_refused_before_allocating(monkeypatch):
    m = fitted("penicillin")
    monkeypatch.setattr(_kr_qspace, "MAX_Q", 20)  # penicillin has q = 24 + 6 = 30

    def boom(*a, **k):
        raise AssertionError("allocated before refusing")

    monkeypatch.setattr(_kr_qspace, "_z_matrix", boom)
    with pytest.raises(ModelError, match=r"q = 30 .*GiB"):
        kr_state(m)


def test_contrast_input_checks_and_invariance():
    m = fitted("hr2")
    st = m._kr_state
    with pytest.raises(ModelError, match="7 columns"):
        kr_contrast(st, np.ones((2, 3)))
    with pytest.raises(ModelError, match="non-finite"):
        kr_contrast(st, [np.nan] * 7)
    with pytest.raises(ModelError, match="zero"):
        kr_contrast(st, np.zeros((2, 7)))
    L = np.eye(7)[[5, 6]]
    a = kr_contrast(st, L)
    # same row space: a rescaled / recombined / rank-deficient L gives the same test
    b = kr_contrast(st, np.array([[0, 0, 0, 0, 0, 2.0, 1.0], [0, 0, 0, 0, 0, 1.0, -3.0]]))
    c = kr_contrast(st, np.vstack([np.zeros(7), L, L.sum(0)]))
    for r in (b, c):
        assert r.num_df == 2
        assert np.allclose([r.f_value, r.den_df, r.p_value], [a.f_value, a.den_df, a.p_value], rtol=1e-10)
    # rhs shifts the hypothesis
    t = kr_contrast(st, np.eye(7)[2], rhs=-10.0)
    t0 = kr_contrast(st, np.eye(7)[2])
    assert np.isclose(t.t_value, (t0.estimate + 10.0) / t0.std_error)
    assert t.df == t0.df


def test_qspace_pieces_match_dense():
    """P, Q and the traces from q space equal the dense n x n definitions (two terms, one
    with a correlated slope, an unbalanced design)."""
    rng = np.random.default_rng(1)
    n = 40
    x = rng.normal(size=n)
    g1, g2 = rng.integers(0, 5, n), rng.integers(0, 3, n)
    X = np.column_stack([np.ones(n), x, rng.normal(size=n)])
    t1 = types.SimpleNamespace(index=g1, Xt=np.column_stack([np.ones(n), x]), nlevels=5, q=2)
    t2 = types.SimpleNamespace(index=g2, Xt=np.ones((n, 1)), nlevels=3, q=1)
    Ts = [np.array([[1.3, 0.0], [-0.4, 0.7]]), np.array([[0.8]])]
    s2 = 1.7
    pairs = [
        _kr_qspace.selector_pairs(0, 5, 2, 0, 0), _kr_qspace.selector_pairs(0, 5, 2, 1, 0),
        _kr_qspace.selector_pairs(0, 5, 2, 1, 1), _kr_qspace.selector_pairs(10, 3, 1, 0, 0),
    ]
    pc = _kr_qspace.kr_pieces(X, [t1, t2], Ts, s2, pairs)
    Z = _kr_qspace._z_matrix([t1, t2], n).toarray()
    Lam = _kr_qspace._lambda_matrix([t1, t2], Ts).toarray()
    Sigma = s2 * (np.eye(n) + Z @ Lam @ Lam.T @ Z.T)
    Si = np.linalg.inv(Sigma)
    G = []
    for a, b in pairs:
        E = np.zeros((Z.shape[1],) * 2)
        E[a, b] = 1.0
        G.append(Z @ E @ Z.T)
    G.append(np.eye(n))
    for i, Gi in enumerate(G):
        np.testing.assert_allclose(pc.P[i], -X.T @ Si @ Gi @ Si @ X, rtol=1e-9, atol=1e-12)
        for j, Gj in enumerate(G):
            np.testing.assert_allclose(pc.Q[i, j], X.T @ Si @ Gi @ Si @ Gj @ Si @ X, rtol=1e-9, atol=1e-12)
            assert np.isclose(pc.K[i, j], np.trace(Gi @ Si @ Gj @ Si), rtol=1e-9)
