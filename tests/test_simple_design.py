"""Simple formula parts (sums of products of bare column names) are parsed and built without
formulaic (jaxmm.formula.simple, jaxmm.design.simple). Every result must be what formulaic
gives: the same matrix, R names, factor levels and contrasts, warnings and errors, for the
models of the lme4 fixtures and test_glmm and for generated combinations on the bundled
data sets; ``formulaic_only()`` forces the formulaic route for the comparison.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jaxmm
from conftest import dataset_for, fixture_ids, load_ref
from jaxmm.design import build_design
from jaxmm.design.matrix import (LazySpec, _part_key, _required_columns, block_levels,
                                 materialize, materialize_formulaic, part_key,
                                 required_columns, variable_order)
from jaxmm.design.naming import categorical_levels, r_column_names
from jaxmm.formula import parse_formula
from jaxmm.formula.expand import split_lhs_terms
from jaxmm.formula.simple import formulaic_only, parse_simple

ds = jaxmm.datasets

# (data source, glmm, formula): the fixtures' models (source: the fixture id) and test_glmm's
FIXTURE_MODELS = [(mid, load_ref(mid)["model_type"] == "GLMM", load_ref(mid)["formula"])
                  for mid in fixture_ids("LMM") + fixture_ids("GLMM")]
GLMM_MODELS = [
    ("cbpp", True, "prop ~ period + (1 | herd)"),
    ("VerbAgg", True, "r2 ~ btype + (1 | id)"),
    ("grouseticks", True, "TICKS ~ YEAR + (1|LOCATION)"),
    ("cbpp", True, "cbind(incidence, size - incidence) ~ 1 + (1 | herd)"),
    ("grouseticks", True, "TICKS ~ YEAR + (1|BROOD) + (1|LOCATION)"),
]
# simple left-hand sides of random-effects terms, in identifiable models
RANDOM_MODELS = [
    ("sleepstudy", False, "Reaction ~ Days + (0 + Days | Subject) + (1 | Subject)"),
    ("sleepstudy", False, "Reaction ~ 0 + Days + (Days - 1 | Subject)"),
    ("HR", False, "HR ~ Time + (0 + Drug | Patient)"),
    ("HR", False, "HR ~ Time * Drug + (Time || Patient)"),
    ("Pixel", False, "pixel ~ day * Side + (day:Side | Dog)"),
    ("cake", False, "angle ~ temperature + (0 + recipe | replicate)"),
    ("star", False, "math ~ gr * sx + (0 + gr | sch)"),
]
# response, grouping factor, simple parts: numeric x factor, factor x factor, ordered
# factors, three-way interactions, interactions without main effects, 0 + / - 1, x:z
GENERATED = {
    "HR": ("HR", "Patient", ["baseHR + Time * Drug", "0 + Drug", "Drug - 1", "Time:Drug",
                             "0 + Time:Drug", "baseHR:Time", "Time*baseHR*Drug",
                             "Drug:Time + baseHR", "-1 + Drug*Time", "(baseHR + Time):Drug"]),
    "cake": ("angle", "replicate", ["recipe * temperature", "temperature", "0 + temperature",
                                    "temperature:temp", "recipe:temperature",
                                    "temp * recipe * temperature", "0 + recipe:temperature"]),
    "star": ("math", "sch", ["gr + sx + eth + cltype", "gr * sx", "gr:cltype", "0 + gr",
                             "yrs * gr", "hdeg:gr", "gr*sx*cltype", "exp:yrs", "0 + gr:hdeg",
                             "cltype*yrs - yrs"]),
    "cbpp": ("incidence", "herd", ["period", "0 + period", "period - 1", "size:period",
                                   "size*incidence"]),
    "Pixel": ("pixel", "Dog", ["day * Side", "Side:day", "0 + Side + day"]),
    "VerbAgg": ("Anger", "id", ["(Gender + btype + situ)", "btype*situ*mode",
                                "(btype + situ):Gender", "resp*btype", "0 + resp:mode"]),
    "grouseticks": ("TICKS", "BROOD", ["YEAR + cHEIGHT", "YEAR:cHEIGHT"]),
    "sleepstudy": ("Reaction", "Subject", ["Days", "0 + Days", "Days - 1", "1 + Days"]),
    "InstEval": ("y", "d", ["service * studage", "lectage:studage"]),
}
GENERATED_MODELS = [(name, False, f"{resp} ~ {part} + (1 | {g})")
                    for name, (resp, g, parts) in GENERATED.items() for part in parts]


def _data(source: str) -> pd.DataFrame:
    return ds.load(source) if source in ds.list() else dataset_for(load_ref(source))


def _build(formula: str, data: pd.DataFrame, glmm: bool):
    """build_design's result (or error) and its warnings' messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = build_design(formula, data, glmm=glmm)
        except Exception as e:  # noqa: BLE001 - compared below
            out = e
    return out, [(w.category, str(w.message)) for w in caught]


def assert_same_block(fast, slow, simple: bool) -> None:
    assert isinstance(fast.spec_ref, LazySpec) == simple  # the fast path ran iff simple
    assert fast.matrix.shape == slow.matrix.shape and fast.matrix.dtype == np.float64
    np.testing.assert_allclose(fast.matrix, slow.matrix, rtol=0, atol=1e-14)
    assert fast.matrix.flags.c_contiguous
    assert fast.names == slow.names
    levels = categorical_levels(slow.spec) if slow.spec is not None else {}
    assert list(block_levels(fast).items()) == list(levels.items())
    if fast.spec is not None:  # the lazy spec is formulaic's
        assert tuple(r_column_names(fast.spec)) == slow.names
        assert [str(t) for t in fast.spec.formula] == [str(t) for t in slow.spec.formula]
        assert list(categorical_levels(fast.spec).items()) == list(levels.items())


def assert_same_design(a, b) -> None:
    np.testing.assert_array_equal(a.y, b.y)
    assert a.X.shape == b.X.shape
    np.testing.assert_allclose(a.X, b.X, rtol=0, atol=1e-14)
    assert (a.x_names, a.dropped_x, a.n_dropped_rows) == (b.x_names, b.dropped_x, b.n_dropped_rows)
    np.testing.assert_array_equal(a.rows, b.rows)
    np.testing.assert_array_equal(a.spec.fixed_keep, b.spec.fixed_keep)
    assert list(a.contrasts) == list(b.contrasts)
    for name, ca in a.contrasts.items():
        cb = b.contrasts[name]
        assert (ca.kind, ca.levels, ca.colnames) == (cb.kind, cb.levels, cb.colnames)
        np.testing.assert_array_equal(ca.matrix, cb.matrix)
    assert len(a.terms) == len(b.terms)
    for ta, tb in zip(a.terms, b.terms):
        assert (ta.group, ta.levels, ta.cnames) == (tb.group, tb.levels, tb.cnames)
        np.testing.assert_array_equal(ta.index, tb.index)
        np.testing.assert_allclose(ta.Xt, tb.Xt, rtol=0, atol=1e-14)
    fa, fb = a.spec.fixed_spec, b.spec.fixed_spec
    assert (fa is None) == (fb is None)
    if fa is not None:
        assert r_column_names(fa) == r_column_names(fb)


def _compare_parts(design) -> None:
    """Each formula part of a design: matrix, routes of part_key / required_columns /
    variable_order / the || expansion, through the fast path and through formulaic."""
    frame = design.fixed_frame
    parts = [design.formula.fixed] + [t.lhs for t in design.formula.random]
    for rhs in parts:
        simple = parse_simple(rhs) is not None
        if " ".join(rhs.split()) in ("1", "1 + 1"):
            continue  # the intercept-only shortcut of both routes
        assert_same_block(materialize(rhs, frame), materialize_formulaic(rhs, frame), simple)
        with formulaic_only():
            slow = (variable_order(rhs), split_lhs_terms(rhs))
        assert (variable_order(rhs), split_lhs_terms(rhs)) == slow
        assert part_key(rhs) == _part_key(rhs)
        assert required_columns(rhs) == list(_required_columns(rhs))


def _check_model(source: str, glmm: bool, formula: str) -> None:
    data = _data(source)
    fast, w_fast = _build(formula, data, glmm)
    with formulaic_only():
        slow, w_slow = _build(formula, data, glmm)
    assert w_fast == w_slow
    if isinstance(slow, Exception):
        assert type(fast) is type(slow) and str(fast) == str(slow)
        return
    assert_same_design(fast, slow)
    _compare_parts(fast)


def _ids(models: list[tuple[str, bool, str]]) -> list[str]:
    return [f"{source}:{formula}" for source, _, formula in models]


@pytest.mark.parametrize("source,glmm,formula", FIXTURE_MODELS + GLMM_MODELS,
                         ids=_ids(FIXTURE_MODELS + GLMM_MODELS))
def test_fixture_and_glmm_models_match_formulaic(source, glmm, formula):
    _check_model(source, glmm, formula)


@pytest.mark.parametrize("source,glmm,formula", GENERATED_MODELS + RANDOM_MODELS,
                         ids=_ids(GENERATED_MODELS + RANDOM_MODELS))
def test_generated_models_match_formulaic(source, glmm, formula):
    parsed = parse_formula(formula)
    assert all(parse_simple(p) is not None for p in [parsed.fixed] + [t.lhs for t in parsed.random])
    _check_model(source, glmm, formula)


def test_the_common_models_take_the_fast_path():
    d = build_design("Reaction ~ Days + (Days | Subject)", ds.load("sleepstudy"))
    assert isinstance(d.spec.fixed_ref, LazySpec) and isinstance(d.spec.terms[0].lhs_ref, LazySpec)
    d = build_design("cbind(incidence, size - incidence) ~ period + (1 | herd)", ds.load("cbpp"),
                     glmm=True)
    assert isinstance(d.spec.fixed_ref, LazySpec)
    assert d.contrasts["period"].colnames == ("2", "3", "4")


def test_unused_categories_and_unordered_copies_match():
    """Frames not cleaned by build_design: stream's first rows keep every recorded level,
    type III's treatment frame has its ordered factors unordered."""
    df = pd.DataFrame({
        "g": pd.Categorical(["a", "b", "a", "b"], categories=["a", "b", "z"]),
        "o": pd.Categorical(["lo", "hi", "mid", "lo"], categories=["lo", "mid", "hi", "top"],
                            ordered=True),
        "x": [1.0, -2.0, 0.5, 3.0],
    })
    for rhs in ["1 + g", "0 + g", "1 + o * x", "0 + o:g", "1 + g*o*x", "x:g"]:
        assert_same_block(materialize(rhs, df), materialize_formulaic(rhs, df), True)
    df["o"] = df["o"].cat.as_unordered()
    assert_same_block(materialize("1 + o*g", df), materialize_formulaic("1 + o*g", df), True)


def test_columns_the_fast_path_leaves_to_formulaic():
    """Integer, boolean, string columns, one-level factors, missing codes: formulaic's."""
    df = pd.DataFrame({
        "i": np.array([1, 2, 3, 4]), "b": [True, False, True, True],
        "one": pd.Categorical(["u"] * 4), "na": pd.Categorical(["a", None, "b", "a"]),
        "x": [1.0, 2.0, 3.0, 5.0],
    })
    for rhs in ["1 + i", "1 + b", "1 + one", "1 + na", "0 + x:i"]:
        assert parse_simple(rhs) is not None
        fast, slow = materialize(rhs, df), materialize_formulaic(rhs, df)
        assert not isinstance(fast.spec_ref, LazySpec)
        assert fast.names == slow.names
        np.testing.assert_array_equal(fast.matrix, slow.matrix)


@pytest.mark.parametrize("rhs", [
    "log(x)", "I(x**2)", "x^2", "(a + b)^2", "a/b", "a %in% b", ".", "`x y`", "2 + x",
    "x - 0", "- x", "a + (b - c)", "(a + 1)", "offset(x)", "C(g)", "scale(x)", "poly(x, 2)",
    "x + ", "a + + b", "True + x", "a:1", "x*0", "(a)(b)", "a b", "",
])
def test_not_simple(rhs):
    assert parse_simple(rhs) is None


def test_parser_matches_formulaic_on_random_formulas():
    """Term labels (degree order) and variable order, against formulaic's parser."""
    from formulaic import Formula

    rng = random.Random(20240531)
    names = ["a", "b", "c", "x", "a.b", "x_1", "T"]

    def operand(depth: int = 0) -> str:
        if depth < 2 and rng.random() < 0.15:
            return "(" + " + ".join(product(depth + 1) for _ in range(rng.randint(1, 3))) + ")"
        return rng.choice(names)

    def product(depth: int = 0) -> str:
        s = operand(depth)
        for _ in range(rng.randint(0, 2)):
            s += rng.choice([":", "*", " * "]) + operand(depth)
        return s

    checked = 0
    for _ in range(1500):
        pieces = []
        for i in range(rng.randint(1, 5)):
            s = rng.choice(["0", "1"]) if rng.random() < 0.15 else product()
            pieces.append(s if i == 0 else rng.choice([" + ", " - ", "+"]) + s)
        text = ("-1 + " if rng.random() < 0.1 else "") + "".join(pieces)
        p = parse_simple(text)
        if p is None:
            continue
        checked += 1
        want = tuple(str(t) for t in Formula(text))
        none = Formula(text, _ordering="none")
        variables = tuple(dict.fromkeys(f.expr for t in none for f in t.factors
                                        if f.expr not in ("0", "1")))
        assert (p.labels, p.variables) == (want, variables), text
    assert checked > 1000


def test_errors_are_formulaic_route_errors():
    df = ds.load("sleepstudy").assign(one=pd.Categorical(["s"] * 180), Days=lambda d: d["Days"] * 1.0)
    for formula in ["Reaction ~ Days + one + (1 | Subject)", "Reaction ~ Days + (one | Subject)",
                    "Reaction ~ Dayz + (1 | Subject)", "Reaction ~ Days + (0 + Days:Dayz | Subject)"]:
        fast, _ = _build(formula, df, False)
        with formulaic_only():
            slow, _ = _build(formula, df, False)
        assert isinstance(fast, Exception) and type(fast) is type(slow)
        assert str(fast) == str(slow)


def test_fast_path_fits_predict_and_anova_as_formulaic():
    """A fast-path fit (factor x numeric) predicts on new data, gives anova tables and
    the summary as the formulaic route does: the lazy spec serves them."""
    hr = ds.load("HR")
    f = "HR ~ baseHR + Time * Drug + (1 | Patient)"
    fast = jaxmm.lmer(f, hr)
    assert isinstance(fast.design.spec.fixed_ref, LazySpec)
    with formulaic_only():
        slow = jaxmm.lmer(f, hr)
    assert not isinstance(slow.design.spec.fixed_ref, LazySpec)
    new = hr.iloc[[3, 50, 99]].reset_index(drop=True)
    np.testing.assert_allclose(fast.predict(new), slow.predict(new), rtol=1e-13)
    for type_ in (1, 3):
        pd.testing.assert_frame_equal(fast.anova(type=type_), slow.anova(type=type_))
    assert str(fast.summary()) == str(slow.summary())


def test_import_and_simple_fits_do_not_import_formulaic():
    code = (
        "import sys, jaxmm\n"
        "assert 'formulaic' not in sys.modules and 'scipy.sparse.linalg' not in sys.modules\n"
        "d = jaxmm.datasets.load('sleepstudy')\n"
        "m = jaxmm.lmer('Reaction ~ Days + (Days|Subject)', d)\n"
        "g = jaxmm.glmer('cbind(incidence, size - incidence) ~ period + (1 | herd)',\n"
        "                jaxmm.datasets.load('cbpp'), family='binomial')\n"
        "assert 'formulaic' not in sys.modules, 'fit imported formulaic'\n"
        "m2 = jaxmm.lmer('Reaction ~ log(Days + 1) + (1|Subject)', d)\n"
        "assert 'formulaic' in sys.modules\n"
        "print(m2.fixef.index[1].replace(' ', ''), round(float(m2.fixef.iloc[1]), 4))\n"
    )
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    name, value = out.stdout.split()
    assert name == "log(Days+1)" and abs(float(value)) > 1
