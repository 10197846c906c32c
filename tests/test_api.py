"""The user-facing API end to end: lmer, staged pipeline, warnings, errors, scoping, CLI."""

from __future__ import annotations

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm import cli
from jaxmm.pipeline import mk_devfun


def fit_quiet(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return jaxmm.lmer(*args, **kw)


def test_staged_pipeline_equals_lmer(sleepstudy):
    d = jaxmm.lformula("Reaction ~ Days + (Days|Subject)", sleepstudy)
    f = jaxmm.mk_devfun(d, reml=True)
    opt = jaxmm.optimize_lmm(f, jaxmm.moment_start(d.y, d.X, d.terms))
    m = jaxmm.LinearMixedModel(d, f, opt)
    m2 = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    assert abs(m.objective - m2.objective) < 1e-8
    np.testing.assert_allclose(m.fixef, m2.fixef, rtol=1e-7)
    # devFunOnly: the objective at the optimum is the reported criterion
    assert abs(f(m.theta_vector) - m.reml_criterion) < 1e-8


def test_lme4_start_reaches_the_same_optimum(sleepstudy):
    a = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy, start="lme4")
    b = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    assert a.opt.theta0.tolist() == [1.0, 0.0, 1.0]
    assert abs(a.objective - b.objective) < 1e-7


def test_objective_under_jit_grad_hessian_vmap(sleepstudy):
    m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    f = m.devfun
    with jaxmm.x64():
        th = jnp.asarray(m.theta_vector)
        fun = lambda t: jaxmm.objective(t, f.blocks, f.layout, True)  # noqa: E731
        g = jax.jit(jax.grad(fun))(th)
        H = jax.jit(jax.hessian(fun))(th)
        batch = jax.vmap(fun)(jnp.stack([th, th * 1.1, th * 0.9]))
        g, H, batch = np.asarray(g), np.asarray(H), np.asarray(batch)
    assert g.dtype == np.float64 and np.max(np.abs(g)) < 1e-4
    assert np.all(np.linalg.eigvalsh(H) > 0)  # a minimum
    assert batch[0] < batch[1] and batch[0] < batch[2]
    # exact gradient agrees with central differences away from the optimum
    t = np.array([0.8, 0.1, 0.3])
    _, ga = f.value_and_grad(t)
    gn = [(f(t + 1e-6 * e) - f(t - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(ga, gn, rtol=1e-5)


def test_float64_is_scoped(sleepstudy):
    jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    assert not jax.config.jax_enable_x64
    assert jnp.ones(2).dtype == jnp.float32


def test_singular_fit_is_reported():
    df = jaxmm.datasets.load("Dyestuff2")
    with pytest.warns(jaxmm.SingularFitWarning, match="singular"):
        m = jaxmm.lmer("Yield ~ 1 + (1|Batch)", df)
    assert m.is_singular
    assert m.theta_vector.tolist() == [0.0]
    assert "boundary (singular) fit" in m.summary()


def test_non_convergence_is_reported(sleepstudy):
    with pytest.warns(jaxmm.ConvergenceWarning):
        m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy, maxiter=2, start="lme4")
    assert not m.opt.converged
    assert m.opt.warnings
    assert "Warning:" in m.summary()


def test_summary_layout(sleepstudy):
    m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    s = m.summary(ddf="lme4")
    for line in [
        "Linear mixed model fit by REML ['lmerMod']",
        "Formula: Reaction ~ Days + (Days|Subject)",
        "REML criterion at convergence: 1743.6",
        "Number of obs: 180, groups:  Subject, 18",
        "Correlation of Fixed Effects:",
    ]:
        assert line in s
    assert "-0.138" in s  # correlation of the fixed effects
    ml = fit_quiet("Reaction ~ Days + (Days|Subject)", sleepstudy, reml=False)
    assert "AIC" in ml.summary() and "1763.9" in ml.summary()
    assert ml.deviance is not None and ml.reml_criterion is None


def test_missing_rows_are_counted():
    m = fit_quiet("math ~ gr + sx + eth + cltype + (yrs | id) + (yrs | sch)", jaxmm.datasets.load("star"))
    assert m.n_dropped == 2218 and m.nobs == 24578
    assert "2218 observations deleted" in m.summary()


def test_coef_and_residuals(sleepstudy):
    m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    c = m.coef()["Subject"]
    re = m.ranef_dict()["Subject"]
    np.testing.assert_allclose(c["Days"], m.fixef["Days"] + re["Days"])
    np.testing.assert_allclose(m.fitted() + m.residuals(), m.design.y)


@pytest.mark.parametrize(
    "formula, mutate, exc, words",
    [
        ("Reaction ~ Dayz + (Days|Subject)", None, jaxmm.ColumnNotFoundError, "Days"),
        ("Reaction ~ Days + (Days|Subject", None, jaxmm.FormulaError, "column"),
        ("Reaction ~ Days", None, jaxmm.ModelError, "random-effects"),
        ("Subject ~ Days + (1|Subject)", None, jaxmm.DataError, "Subject"),
        ("Reaction ~ Days + (1|one)", "one", jaxmm.ModelError, "one"),
        ("Reaction ~ Days + (1|obs)", "obs", jaxmm.ModelError, "levels"),
        ("Reaction ~ Days + (Days|Subject)", "inf", jaxmm.DataError, "Reaction"),
        ("Reaction ~ Days + (Days|Subject)", "empty", jaxmm.DataError, "empty"),
    ],
)
def test_bad_input_gives_jaxmm_errors(sleepstudy, formula, mutate, exc, words):
    df = sleepstudy.copy()
    if mutate == "one":
        df["one"] = "a"
    elif mutate == "obs":
        df["obs"] = np.arange(len(df)).astype(str)
    elif mutate == "inf":
        df.loc[3, "Reaction"] = np.inf
    elif mutate == "empty":
        df = df.iloc[:0]
    with pytest.raises(exc) as info:
        jaxmm.lmer(formula, df)
    assert words.lower() in str(info.value).lower()
    assert isinstance(info.value, jaxmm.JaxmmError)


def test_rank_deficient_x_drops_aliased_column(sleepstudy):
    df = sleepstudy.assign(Days2=sleepstudy["Days"] * 2.0)
    with pytest.warns(jaxmm.RankDeficiencyWarning, match="Days2"):
        m = jaxmm.lmer("Reaction ~ Days + Days2 + (Days|Subject)", df)
    assert list(m.fixef.index) == ["(Intercept)", "Days"]


def test_refuses_huge_dense_block(monkeypatch, sleepstudy):
    monkeypatch.setattr("jaxmm.pipeline.MAX_DENSE", 5)
    d = jaxmm.lformula("diameter ~ 1 + (1|plate) + (1|sample)", jaxmm.datasets.load("Penicillin"))
    with pytest.raises(jaxmm.ModelError, match="dense block"):
        mk_devfun(d)


def test_cli_text_and_json(capsys):
    assert cli.main(["fit", "Reaction ~ Days + (Days|Subject)", "--data", "sleepstudy"]) == 0
    out = capsys.readouterr().out
    assert "REML criterion at convergence: 1743.6" in out and "Data: sleepstudy" in out
    assert cli.main(["fit", "Reaction ~ Days + (Days|Subject)", "--data", "sleepstudy", "--ml", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["reml"] is False and abs(res["deviance"] - 1751.9393444647) < 1e-5
    assert res["ngroups"] == {"Subject": 18} and res["converged"]


def test_cli_reads_csv_and_reports_errors(tmp_path, capsys, sleepstudy):
    path = tmp_path / "sleep.csv"
    sleepstudy.to_csv(path, index=False)
    assert cli.main(["fit", "Reaction ~ Days + (1|Subject)", "--data", str(path)]) == 0
    assert "Subject, 18" in capsys.readouterr().out
    assert cli.main(["fit", "Reaction ~ Dayz + (1|Subject)", "--data", str(path)]) == 2
    assert "Days" in capsys.readouterr().err
    assert cli.main(["fit", "y ~ 1 + (1|g)", "--data", "nosuchdata"]) == 2


def test_cli_command_exits_with_main_code_and_flushed_output():
    """The ``jaxmm`` command (cli.run: gc.freeze, then os._exit after flushing) prints the
    whole result and exits with main's code: 0, 2 for jaxmm's errors and for argparse's."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")

    def command(*args):
        return subprocess.run([sys.executable, "-c", "from jaxmm.cli import run; run()", *args],
                              capture_output=True, text=True, env=env, timeout=300, check=False)

    ok = command("fit", "Reaction ~ Days + (Days|Subject)", "--data", "sleepstudy", "--json")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["ngroups"] == {"Subject": 18}
    bad = command("fit", "Reaction ~ Dayz + (1|Subject)", "--data", "sleepstudy")
    assert bad.returncode == 2 and "jaxmm: error:" in bad.stderr and "Days" in bad.stderr
    usage = command("fit")
    assert usage.returncode == 2 and "required" in usage.stderr


def test_datasets():
    names = jaxmm.datasets.list()
    assert {"sleepstudy", "InstEval", "star", "HR", "Pixel"} <= set(names)
    star = jaxmm.datasets.load("star")
    assert star["gr"].cat.ordered and list(star["gr"].cat.categories) == ["K", "1", "2", "3"]
    assert isinstance(jaxmm.datasets.load("hr"), pd.DataFrame)  # case-insensitive
    with pytest.raises(jaxmm.DataError, match="sleepstudy"):
        jaxmm.datasets.load("sleepstudyy")


def test_similar_model_reuses_compiled_code(sleepstudy):
    """Sizes are padded to buckets (inertly), so a new data size does not recompile."""
    from jaxmm.optimize.lmm import fit_program

    full = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy)
    before = fit_program._cache_size()
    sub = sleepstudy[sleepstudy.Subject != "308"].copy()
    sub["Subject"] = sub["Subject"].cat.remove_unused_categories()
    m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sub)
    assert fit_program._cache_size() == before
    assert m.ngroups == {"Subject": 17} and m.nobs == 170
    assert len(m.ranef()) == 34 and m.objective != full.objective


def test_new_response_changes_only_the_y_blocks(sleepstudy):
    """A bootstrap or many-response fit swaps only the y-dependent leaves of the blocks."""
    from jaxmm.core import with_response
    from jaxmm.design.crossprod import crossproducts

    formula = "Reaction ~ Days + (Days|Subject) + (1|grp)"
    df = sleepstudy.assign(grp=np.arange(len(sleepstudy)) % 5)
    d = jaxmm.lformula(formula, df)
    y2 = d.y[::-1].copy()
    layout, blocks = crossproducts(d.y, d.X, d.terms)
    layout2, blocks2 = crossproducts(y2, d.X, d.terms)
    assert layout2 == layout
    theta = np.array([0.9, 0.1, 0.3, 0.5])
    with jaxmm.x64():
        jb = jax.tree_util.tree_map(jnp.asarray, blocks)
        swapped = with_response(jb, layout, jnp.asarray(blocks2.C1[..., -1]), jnp.asarray(blocks2.A[-1]))
        a = float(jaxmm.objective(jnp.asarray(theta), swapped, layout, True))
        b = float(jaxmm.objective(jnp.asarray(theta), jax.tree_util.tree_map(jnp.asarray, blocks2), layout, True))
    assert abs(a - b) < 1e-9 * abs(b)


def test_missing_values_drop_rows_as_r_does(sleepstudy):
    df = sleepstudy.copy()
    df.loc[[0, 5], "Reaction"] = np.nan
    df.loc[7, "Subject"] = np.nan
    m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", df)
    assert m.n_dropped == 3 and m.nobs == 177
    ref = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", sleepstudy.drop(index=[0, 5, 7]))
    assert abs(m.objective - ref.objective) < 1e-8


def test_cli_glmer(capsys):
    from jaxmm.cli import main

    assert main(["fit", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "--data", "cbpp",
                 "--family", "binomial", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["family"] == "binomial" and abs(out["loglik"] - (-92.02628)) < 1e-3
    assert main(["fit", "y ~ 1 + (1|herd)", "--data", "cbpp", "--family", "gamma"]) == 2
    assert "not supported" in capsys.readouterr().err
