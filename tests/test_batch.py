"""Batched fitting: simulate, parametric bootstrap, many responses.

Done means (issue 4): every replicate equals an individual fit of the same simulated
response (criterion within 1e-8 relative), near-singular replicates included; bootstrap
standard errors of beta for sleep_full and penicillin within 10 % of lme4's bootMer
figures (500 replicates each, in tests/fixtures/lme4/lme4_boot_timings.csv); results
reproducible from the seed whatever the chunk size; failing lanes flagged, never raised.
"""

from __future__ import annotations

import csv
import re
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import FIXTURES, dataset_for, fitted, load_ref

CRIT_RTOL = 1e-8


def lme4_boot_se(model_id: str) -> dict[str, float]:
    with open(FIXTURES / "lme4_boot_timings.csv", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["model"] == model_id and row["task"].startswith("bootMer"):
                return {k: float(v) for k, v in re.findall(r"([^:;=\s]+)=([-\d.eE+]+)", row["detail"])}
    raise KeyError(model_id)


def refit_alone(model_id: str, y: np.ndarray):
    """An ordinary jaxmm.lmer fit of the model's formula to response y (rows used)."""
    ref, m = load_ref(model_id), fitted(model_id)
    df = dataset_for(ref).copy()
    resp = m.design.response
    df[resp] = np.nan
    df.loc[df.index[m.design.rows], resp] = y
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return jaxmm.lmer(ref["formula"], df, reml=bool(ref["REML"]))


def check_equal_to_single_fit(model_id, boot, Y, rows):
    m = fitted(model_id)
    tnames = list(m.theta.index)
    for i in rows:
        single = refit_alone(model_id, Y[i])
        row = boot.table.iloc[i]
        assert row["converged"]
        crit = single.objective
        assert abs(row["objective"] - crit) <= CRIT_RTOL * abs(crit), (i, row["objective"], crit)
        assert np.allclose(row[list(m.fixef.index)].to_numpy(float), single.fixef.to_numpy(), rtol=1e-5, atol=1e-8 * abs(crit))
        assert np.isclose(row["sigma"], single.sigma, rtol=1e-5)
        assert np.allclose(row[tnames].to_numpy(float), single.theta_vector, atol=2e-4)
        assert bool(row["singular"]) == single.is_singular


@pytest.fixture(scope="module")
def sleep_boot():
    m = fitted("sleep_full")
    return m.bootstrap(1000, seed=42, progress=False)


def test_bootstrap_table_columns(sleep_boot):
    t = sleep_boot.table
    assert t.shape[0] == 1000
    head = ["objective", "sigma", "(Intercept)", "Days", "Subject.(Intercept)",
            "Subject.Days.(Intercept)", "Subject.Days", "sd_(Intercept)|Subject",
            "cor_Days.(Intercept)|Subject", "sd_Days|Subject"]
    assert list(t.columns[: len(head)]) == head
    for col in ["converged", "singular", "status", "n_iter", "max_grad"]:
        assert col in t.columns
    assert t["converged"].all()
    assert (t["status"] <= 1).all()
    # derived columns agree with theta and sigma
    assert np.allclose(t["sd_(Intercept)|Subject"], t["sigma"] * t["Subject.(Intercept)"].abs())


def test_bootstrap_se_matches_lme4_sleep(sleep_boot):
    ref = lme4_boot_se("sleep_full")
    se = sleep_boot.table[list(ref)].std(ddof=1)
    for name, v in ref.items():
        assert abs(se[name] / v - 1) < 0.10, (name, se[name], v)


def test_bootstrap_se_matches_lme4_penicillin():
    boot = fitted("penicillin").bootstrap(1000, seed=7, progress=False)
    ref = lme4_boot_se("penicillin")
    assert boot.table["converged"].all()
    se = boot.se
    for name, v in ref.items():
        assert abs(se[name] / v - 1) < 0.10, (name, se[name], v)


def test_replicates_equal_single_fits_sleep(sleep_boot):
    m = fitted("sleep_full")
    Y = m.simulate(1000, seed=42)
    t = sleep_boot.table
    # the most nearly singular replicates, plus the first two
    near = list(np.argsort(t[["Subject.(Intercept)", "Subject.Days"]].min(axis=1).to_numpy())[:2])
    check_equal_to_single_fit("sleep_full", sleep_boot, Y, [0, 1] + near)


def test_replicates_equal_single_fits_singular_model():
    """dyestuff2 is a singular fit: many replicates land on the boundary theta = 0."""
    m = fitted("dyestuff2")
    boot = m.bootstrap(40, seed=3, progress=False)
    t = boot.table
    assert t["singular"].any() and (~t["singular"]).any()
    Y = m.simulate(40, seed=3)
    sing = list(np.flatnonzero(t["singular"].to_numpy())[:2])
    reg = list(np.flatnonzero(~t["singular"].to_numpy())[:2])
    check_equal_to_single_fit("dyestuff2", boot, Y, sing + reg)


def test_replicates_equal_single_fits_crossed():
    m = fitted("penicillin")
    boot = m.bootstrap(12, seed=11, progress=False)
    check_equal_to_single_fit("penicillin", boot, m.simulate(12, seed=11), [0, 5])


def test_reproducible_regardless_of_chunk_size():
    m = fitted("sleep_full")
    a = m.bootstrap(30, seed=5, progress=False).table
    b = m.bootstrap(30, seed=5, batch_size=7, progress=False).table
    num = a.select_dtypes("number").columns
    assert np.allclose(a[num].to_numpy(float), b[num].to_numpy(float), rtol=1e-9, atol=1e-9, equal_nan=True)
    assert np.allclose(m.simulate(10, seed=5), m.simulate(30, seed=5)[:10], rtol=1e-13)
    assert not np.array_equal(m.simulate(2, seed=5), m.simulate(2, seed=6))


def test_simulate_moments():
    m = fitted("sleep_full")
    Y = m.simulate(4000, seed=0)
    assert Y.shape == (4000, m.nobs)
    Xb = m.design.X @ m.fixef.to_numpy()
    assert np.max(np.abs(Y.mean(0) - Xb)) < 4.0  # sd of a mean here is about 0.6
    # variance of one observation: sigma^2 + x' Sigma_b x (day 0: sigma^2 + sd_int^2)
    vc = m.varcorr()
    v0 = m.sigma**2 + vc["vcov"].iloc[0]
    day0 = m.design.X[:, 1] == 0
    assert abs(Y[:, day0].var(0).mean() / v0 - 1) < 0.05
    Yu = m.simulate(2000, seed=0, use_u=True)
    assert np.max(np.abs(Yu.mean(0) - m.fitted())) < 3.0
    assert abs(Yu.std(0).mean() / m.sigma - 1) < 0.05


@pytest.mark.parametrize("method", ["percentile", "shortest", "normal"])
def test_confint_layout(sleep_boot, method):
    ref = load_ref("sleep_full")
    ci = sleep_boot.confint(method=method)
    assert list(ci.index) == [r["parm"] for r in ref["confint_profile"]]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    prof = pd.DataFrame(ref["confint_profile"]).set_index("parm")
    assert (ci["2.5 %"] < ci["97.5 %"]).all()
    # bootstrap and profile intervals of a well-determined model roughly agree
    width_b, width_p = ci["97.5 %"] - ci["2.5 %"], prof["97.5 %"] - prof["2.5 %"]
    assert np.all(np.abs(width_b / width_p - 1) < 0.35), (width_b / width_p)
    assert list(sleep_boot.confint(0.9, method=method).columns) == ["5 %", "95 %"]


def test_confint_bad_arguments(sleep_boot):
    with pytest.raises(jaxmm.ModelError, match="method"):
        sleep_boot.confint(method="bca")
    with pytest.raises(jaxmm.ModelError, match="level"):
        sleep_boot.confint(level=95)


def test_bad_arguments():
    m = fitted("dyestuff")
    with pytest.raises(jaxmm.ModelError, match="nsim"):
        m.bootstrap(0)
    with pytest.raises(jaxmm.ModelError, match="batch_size"):
        m.bootstrap(5, seed=1, batch_size=0)
    with pytest.raises(jaxmm.ModelError, match="seed"):
        m.simulate(2, seed="abc")


def test_progress_without_tqdm(monkeypatch):
    m = fitted("dyestuff")
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    with pytest.raises(ImportError, match=r"jaxmm\[progress\]"):
        m.bootstrap(4, seed=1, progress=True)
    assert m.bootstrap(4, seed=1, batch_size=2).table.shape[0] == 4  # auto: silently off


def test_failing_lanes_are_flagged_not_raised():
    m = fitted("sleep_full")
    # y'y overflows in the middle lane: its criterion is not finite
    Y = np.column_stack([m.design.y, 1e200 * m.design.y, m.design.y])
    with pytest.warns(jaxmm.ConvergenceWarning, match="1 of 3 fits"):
        res = m.refit_many(Y)
    t = res.table
    assert list(t["converged"]) == [True, False, True]
    assert abs(t["objective"].iloc[0] - m.objective) <= CRIT_RTOL * m.objective
    assert t["status"].iloc[1] == 3
    noisy = m.design.y + np.random.default_rng(0).normal(0, 40, m.nobs)
    with pytest.warns(jaxmm.ConvergenceWarning, match="1 reached the iteration cap"):
        capped = m.refit_many(noisy, maxiter=1).table
    assert (capped["status"] == 2).all() and not capped["converged"].any()


def test_refit_many_matches_single_fits():
    m = fitted("hr2")
    rng = np.random.default_rng(1)
    Y = pd.DataFrame({"orig": m.design.y, "scaled": 3 * m.design.y + 7,
                      "noisy": m.design.y + rng.normal(0, 5, m.nobs)})
    res = m.refit_many(Y)
    t = res.table
    assert list(t.index) == ["orig", "scaled", "noisy"]
    assert abs(t.loc["orig", "objective"] - m.objective) <= CRIT_RTOL * m.objective
    assert np.isclose(t.loc["scaled", "sigma"], 3 * t.loc["orig", "sigma"], rtol=1e-6)
    single = refit_alone("hr2", Y["noisy"].to_numpy())
    assert abs(t.loc["noisy", "objective"] - single.objective) <= CRIT_RTOL * single.objective
    full = res.model("noisy")
    assert abs(full.objective - single.objective) <= CRIT_RTOL * single.objective
    assert np.allclose(full.fixef, single.fixef, rtol=1e-6)


def test_lmer_many_and_missing_responses():
    df = jaxmm.datasets.load("Penicillin")
    rng = np.random.default_rng(2)
    df["g1"] = df["diameter"] + rng.normal(0, 1, len(df))
    df["g2"] = df["diameter"] * 0.5
    df.loc[3, "g2"] = np.nan
    with pytest.warns(jaxmm.errors.DroppedRowsWarning, match="1 rows"):
        res = jaxmm.lmer_many("y ~ 1 + (1|plate) + (1|sample)", df, ["diameter", "g1", "g2"])
    assert res.design.nobs == len(df) - 1
    alone = jaxmm.lmer("g1 ~ 1 + (1|plate) + (1|sample)", df.drop(index=3))
    assert abs(res.table.loc["g1", "objective"] - alone.objective) <= CRIT_RTOL * alone.objective
    with pytest.raises(jaxmm.DataError, match="not in the data"):
        jaxmm.lmer_many("y ~ 1 + (1|plate)", df, ["nope"])
    df["txt"] = "a"
    with pytest.raises(jaxmm.DataError, match="numeric"):
        jaxmm.lmer_many("y ~ 1 + (1|plate)", df, ["diameter", "txt"])
    with pytest.raises(jaxmm.DataError, match="rows"):
        fitted("penicillin").refit_many(np.ones((5, 2)))


def test_power_analysis_example(tmp_path):
    """examples/power_analysis.py runs (small sizes, headless plot) and gives sane power."""
    import importlib.util
    from pathlib import Path

    pytest.importorskip("matplotlib")
    path = Path(__file__).parents[1] / "examples" / "power_analysis.py"
    spec = importlib.util.spec_from_file_location("power_analysis", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "power.png"
    table = mod.main(["--nsim", "40", "--subjects", "8,24", "--effects", "0,12", "--out", str(out)])
    assert out.stat().st_size > 1000
    assert table.loc[0.0].max() < 0.3  # about the 5 % level
    assert table.loc[12.0, 24] > 0.9  # a large slope with 24 subjects is found


def test_sequential_lanes_for_large_blocks(monkeypatch):
    """Models with a large dense block fit lane after lane (lax.map); same results."""
    import jaxmm.batch.fit as fit_mod

    m = fitted("dyestuff")
    a = m.bootstrap(5, seed=8, progress=False).table
    monkeypatch.setattr(fit_mod, "SEQUENTIAL_R", 0)
    b = m.bootstrap(6, seed=8, progress=False).table.iloc[:5]  # another shape: a fresh trace
    assert np.allclose(a["objective"], b["objective"], rtol=1e-10)
    assert np.allclose(a["(Intercept)"], b["(Intercept)"], rtol=1e-8)


def test_batch_jit_falls_back_when_an_xla_option_is_unknown(monkeypatch):
    """The batched programs' XLA options are debug options that jaxlib may rename: an
    unknown one means XLA's defaults, same results; other errors still raise."""
    import jax.numpy as jnp

    from jaxmm.batch import compiled

    monkeypatch.setattr(compiled, "CPU_OPTIONS", {"xla_jaxmm_no_such_option": True})
    f = compiled.batch_jit(lambda x, k: x * k, static_argnames=("k",))
    with jaxmm.x64():
        assert float(f(jnp.ones(3), k=2).sum()) == 6.0
        assert float(f(jnp.ones(4), k=3).sum()) == 12.0
        with pytest.raises(TypeError):
            f(jnp.ones(3), 1, 2, 3)
