"""The differentiable-model examples run (small sizes) and reach what they claim."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def load(name: str):
    path = Path(__file__).parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_influence_example_matches_leave_one_subject_out_refits():
    r = load("influence_sleepstudy").influence(n_refits=2)
    done = ~np.isnan(r["actual"])
    assert done.sum() == 2 and r["grad"].shape == (18,)
    # integrated implicit gradients reproduce the refits without the subject
    np.testing.assert_allclose(r["integrated"][done], r["actual"][done], atol=1e-4)
    np.testing.assert_allclose(r["predicted"], r["slope"] - r["grad"])


def test_deep_mixed_model_recovers_variance_components():
    mod = load("deep_mixed_model")
    r = mod.train(groups=30, per_group=10, steps=800)
    assert abs(r["sigma"] - mod.SIGMA) < 0.25 * mod.SIGMA
    assert abs(r["tau"] - r["tau_realized"]) < 0.3 * r["tau_realized"]
    assert r["f_rmse"] < 0.3


def test_numpyro_example_agrees_with_reml():
    pytest.importorskip("numpyro")
    r = load("numpyro_sleepstudy").sample(num_warmup=150, num_samples=150)
    reml, draws = r["reml"], r["draws"]
    sd = draws["beta"].std(0)
    assert np.all(np.abs(draws["beta"].mean(0) - reml["beta"]) < sd)
    assert abs(draws["sigma"].mean() - reml["sigma"]) < 0.1 * reml["sigma"]
