"""Host-side design: checked against lme4's fixtures, R semantics, errors, new data."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm import datasets
from jaxmm.design import Design, DesignSpec, TermDesign, build_design, contr_poly
from jaxmm.errors import (
    ColumnNotFoundError,
    DataError,
    FormulaError,
    ModelError,
    RankDeficiencyWarning,
)
from jaxmm.formula import parse_formula

FIXTURES = Path(__file__).parent / "fixtures" / "lme4"


def _fixtures(model_type: str) -> list[str]:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(path.read_text())
        if fx.get("model_type") == model_type:
            out.append(path.stem)
    return out


LMM = _fixtures("LMM")
GLMM = _fixtures("GLMM")


@lru_cache(maxsize=None)
def fixture(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def load(dataset: str) -> pd.DataFrame:
    if dataset == "star_trt":  # star with gr as an UNORDERED factor (see the fixture note)
        df = datasets.load("star")
        df["gr"] = df["gr"].cat.as_unordered()
        return df
    return datasets.load(dataset)


@lru_cache(maxsize=None)
def design_for(name: str) -> Design:
    fx = fixture(name)
    return build_design(fx["formula"], load(fx["dataset"]))


def as_list(x: object) -> list:
    return x if isinstance(x, list) else [x]


def theta_names(d: Design) -> list[str]:
    """lme4's theta names: lower triangle of each term, column by column."""
    out = []
    for t in d.terms:
        c = t.cnames
        for j in range(len(c)):
            for i in range(j, len(c)):
                out.append(f"{t.group}.{c[i]}" if i == j else f"{t.group}.{c[i]}.{c[j]}")
    return out


# ---------------------------------------------------------------- lme4 fixtures


def test_fixture_lists_are_complete() -> None:
    assert len(LMM) >= 30 and {"star", "star_trt", "insteval", "pastes", "cake"} <= set(LMM)
    assert set(GLMM) == {"cbpp_glmm", "cbpp_glmm_agq25", "grouse_glmm", "verbagg_glmm"}


@pytest.mark.parametrize("name", LMM)
def test_matches_lme4(name: str) -> None:
    fx, d = fixture(name), design_for(name)
    assert d.nobs == fx["nobs"] == d.X.shape[0] == d.y.shape[0]
    assert list(d.x_names) == as_list(fx["X_colnames"])
    assert d.X.shape[1] == len(d.x_names)
    assert list(d.ngroups.items()) == list(fx["ngroups"].items())
    assert theta_names(d) == list(fx["theta"])  # term order (sorted by levels) and cnames
    assert [t.nlevels for t in d.terms] == sorted((t.nlevels for t in d.terms), reverse=True)
    assert d.n_dropped_rows == len(load(fx["dataset"])) - fx["nobs"]
    assert d.dropped_x == ()


@pytest.mark.parametrize("name", LMM)
def test_contrasts_match_lme4(name: str) -> None:
    fx, d = fixture(name), design_for(name)
    recorded = fx["contrasts"] if isinstance(fx["contrasts"], dict) else {}
    assert set(d.contrasts) == set(recorded)
    for factor, rec in recorded.items():
        got = d.contrasts[factor]
        mat = np.asarray(rec["matrix"]["values"], dtype=float).reshape(len(rec["levels"]), -1)
        assert got.kind == rec["type"]
        assert list(got.levels) == rec["levels"] == list(rec["matrix"]["rownames"])
        assert list(got.colnames) == as_list(rec["matrix"]["colnames"])
        np.testing.assert_allclose(got.matrix, mat, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in LMM if not n.endswith("_ML")])
def test_ranef_levels_match_lme4(name: str) -> None:
    fx, d = fixture(name), design_for(name)
    for t in d.terms:
        for cname in t.cnames:
            grp = [r["grp"] for r in fx["ranef"] if r["grpvar"] == t.group and r["term"] == cname]
            assert grp, (t.group, cname)
            assert list(t.levels[: len(grp)]) == grp  # star stores the first 50 only


def test_interaction_levels() -> None:
    pastes = design_for("pastes").terms[0]
    assert pastes.group == "cask:batch"
    assert pastes.levels[:11] == ("a:A", "a:B", "a:C", "a:D", "a:E", "a:F", "a:G", "a:H",
                                  "a:I", "a:J", "b:A")
    cake = design_for("cake").terms[0]
    assert cake.levels[:16] == tuple(f"A:{i}" for i in range(1, 16)) + ("B:1",)
    pixel = design_for("pixel").terms[0]
    assert pixel.group == "Dog:Side" and pixel.levels[:3] == ("A:L", "A:R", "B:L")


def test_star_na_omit_and_poly_contrasts() -> None:
    d = design_for("star")
    assert d.n_dropped_rows == 2218 and d.nobs == 24578
    df = datasets.load("star")
    cols = ["math", "gr", "sx", "eth", "cltype", "yrs", "id", "sch"]
    np.testing.assert_array_equal(d.rows, np.flatnonzero(df[cols].notna().all(axis=1)))
    np.testing.assert_array_equal(d.y, df["math"].to_numpy()[d.rows])
    gr = df["gr"].cat.codes.to_numpy()[d.rows]
    np.testing.assert_allclose(d.X[:, 1:4], contr_poly(4)[gr], atol=1e-15)
    # unused levels of id are dropped (11598 categories, 10732 used)
    assert d.ngroups == {"id": 10732, "sch": 80}
    ids = df["id"].astype(str).to_numpy()[d.rows]
    ident = d.terms[0]
    assert (np.asarray(ident.levels)[ident.index] == ids).all()


def test_term_arrays_are_per_term_only() -> None:
    d = design_for("insteval")
    for t in d.terms:
        assert isinstance(t, TermDesign)
        assert t.index.dtype == np.int32 and t.index.shape == (d.nobs,)
        assert t.Xt.dtype == np.float64 and t.Xt.shape == (d.nobs, t.q)
        assert t.index.min() == 0 and t.index.max() == t.nlevels - 1
    assert sum(t.nlevels * t.q for t in d.terms) == fixture("insteval")["n_ranef_total"]


def test_random_term_matrices() -> None:
    hr3 = design_for("hr3")
    assert [t.cnames for t in hr3.terms] == [("(Intercept)",), ("Time",)]
    hr = datasets.load("HR")
    np.testing.assert_array_equal(hr3.terms[1].Xt[:, 0], hr["Time"].to_numpy())
    pix = build_design("pixel ~ day + (0 + Side | Dog)", datasets.load("Pixel"))
    assert pix.terms[0].cnames == ("SideL", "SideR")
    assert (pix.terms[0].Xt.sum(axis=1) == 1).all()


def test_glmm_fixtures() -> None:
    for name in ("grouse_glmm", "verbagg_glmm"):
        fx = fixture(name)
        d = build_design(fx["formula"], load(fx["dataset"]), glmm=True)
        assert list(d.x_names) == fx["X_colnames"]
        assert list(d.ngroups.items()) == list(fx["ngroups"].items())
        assert theta_names(d) == list(fx["theta"])
    # grouse: INDEX has one level per observation, which lmer refuses and glmer accepts
    fx = fixture("grouse_glmm")
    with pytest.raises(ModelError, match="INDEX"):
        build_design(fx["formula"], datasets.load("grouseticks"))
    # verbagg: factor response, first level (N) is 0
    d = build_design(fixture("verbagg_glmm")["formula"], datasets.load("VerbAgg"), glmm=True)
    np.testing.assert_array_equal(d.y, (datasets.load("VerbAgg")["r2"] == "Y").to_numpy())
    with pytest.raises(ModelError, match="cbind"):
        build_design(fixture("cbpp_glmm")["formula"], datasets.load("cbpp"))


# ---------------------------------------------------------------- R semantics


def test_scale_uses_full_data_and_is_kept_for_new_data() -> None:
    g = datasets.load("grouseticks")
    d = build_design("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD)", g)
    z = (g["HEIGHT"] - g["HEIGHT"].mean()) / g["HEIGHT"].std()
    np.testing.assert_allclose(d.X[:, 3], z.to_numpy(), rtol=1e-13)
    # R evaluates scale() before dropping incomplete rows
    g2 = g.copy()
    g2.loc[:49, "TICKS"] = np.nan
    d2 = build_design("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD)", g2)
    assert d2.n_dropped_rows == 50
    np.testing.assert_allclose(d2.X[:, 3], z.to_numpy()[50:], rtol=1e-13)
    # predict: the original centre and scale
    np.testing.assert_allclose(d.spec.fixed_matrix(g.head(5))[:, 3], z.to_numpy()[:5], rtol=1e-13)


def test_column_kinds_and_names() -> None:
    ss = datasets.load("sleepstudy")
    ss["late"] = ss["Days"] > 4
    ss["shift"] = np.where(ss["Days"] % 3 == 0, "night", "day")
    ss["subj"] = ss["Subject"].astype(int)
    d = build_design("Reaction ~ late + shift + I(Days^2) + log(Days + 1) + (1 | subj)", ss)
    assert d.x_names == ("(Intercept)", "lateTRUE", "shiftnight", "I(Days^2)", "log(Days + 1)")
    np.testing.assert_allclose(d.X[:, 3], ss["Days"].to_numpy() ** 2)
    assert d.terms[0].levels[:3] == ("308", "309", "310")
    d = build_design("Reaction ~ Days + (1 | Days)", ss)  # numeric grouping, numeric order
    assert d.terms[0].levels == tuple(str(i) for i in range(10))


def test_interaction_without_main_effects_follows_r() -> None:
    # R codes both factors of a:b by dummies (rank deficient); lme4 then drops the last
    pix = datasets.load("Pixel")
    with pytest.warns(RankDeficiencyWarning, match=r"dropping 1 column.*'DogJ:SideR'"):
        d = build_design("pixel ~ Dog:Side + (1 | Dog)", pix)
    assert d.x_names[:3] == ("(Intercept)", "DogA:SideL", "DogB:SideL") and len(d.x_names) == 20
    d = build_design("pixel ~ Side + day + day:Side + (1 | Dog)", pix)  # R's variable order
    assert d.x_names == ("(Intercept)", "SideR", "day", "SideR:day")
    d = build_design("pixel ~ 0 + Side:day + Dog + (1 | Dog)", pix)
    assert d.x_names[:2] == ("DogA", "DogB") and d.x_names[-2:] == ("SideL:day", "SideR:day")


def test_rank_deficiency_keeps_earlier_columns() -> None:
    ss = datasets.load("sleepstudy")
    ss["x2"] = 2.0 * ss["Days"]
    with pytest.warns(RankDeficiencyWarning,
                      match=r"rank deficient so dropping 1 column / coefficient: 'x2'"):
        d = build_design("Reaction ~ Days + x2 + (1 | Subject)", ss)
    assert d.x_names == ("(Intercept)", "Days") and d.dropped_x == ("x2",)
    assert d.X.shape == (180, 2)
    np.testing.assert_array_equal(d.spec.fixed_matrix(ss.head(2)), d.X[:2])


def test_accepts_parsed_formula_and_any_index() -> None:
    ss = datasets.load("sleepstudy").iloc[::-1]
    ss.index = np.arange(1000, 1180)
    f = parse_formula("Reaction ~ Days + (Days | Subject)")
    d = build_design(f, ss)
    assert d.formula is f and d.response == "Reaction"
    np.testing.assert_array_equal(d.y, ss["Reaction"].to_numpy())
    np.testing.assert_array_equal(d.rows, np.arange(180))


# ---------------------------------------------------------------- errors


def _sleep(**cols: object) -> pd.DataFrame:
    return datasets.load("sleepstudy").assign(**cols)


@pytest.mark.parametrize(
    "formula, data, exc, words",
    [
        ("Reacton ~ Days + (1 | Subject)", None, ColumnNotFoundError,
         "column 'Reacton' not found; did you mean 'Reaction'?"),
        ("Reaction ~ Dayz + (1 | Subject)", None, ColumnNotFoundError, "'Dayz'"),
        ("Reaction ~ Days + (Dayz | Subject)", None, ColumnNotFoundError, "'Dayz'"),
        ("Reaction ~ Days + (1 | Subjet)", None, ColumnNotFoundError, "did you mean 'Subject'"),
        ("Reaction ~ log(Dayz) + (1 | Subject)", None, ColumnNotFoundError, "'Dayz'"),
        ("Subject ~ Days + (1 | Subject)", None, DataError, "'Subject' is not numeric"),
        ("s ~ Days + (1 | Subject)", _sleep(s="a"), DataError, "'s' is not numeric"),
        ("Reaction ~ x + (1 | Subject)", _sleep(x=np.r_[np.inf, -np.inf, np.ones(178)]),
         DataError, "column 'x' has 2 infinite values"),
        ("Reaction ~ Days + (1 | Subject)", _sleep(Reaction=np.nan), DataError,
         "no complete rows"),
        ("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy").iloc[:0], DataError,
         "empty"),
        ("Reaction ~ Days + (1 | g)", _sleep(g="one"), ModelError, "'g'"),
        ("Reaction ~ Days + (1 | obs)", _sleep(obs=np.arange(180)), ModelError,
         "number of levels of each grouping factor must be < number of observations"),
        ("Reaction ~ Days + (0 + f | Subject)", _sleep(f=np.arange(180) % 10), None, None),
        ("Reaction ~ const + (1 | Subject)", _sleep(const="a"), DataError, "'const'"),
        ("Reaction ~ log(Days) + (1 | Subject)", None, DataError, "'log(Days)'"),
        ("Reaction ~ Days + (0 | Subject)", None, ModelError, "no columns"),
        ("Reaction ~ Days", None, ModelError, "no random-effects terms"),
        ("Reaction ~ Days + (1 | Subject", None, FormulaError, "column 19"),
    ],
)
def test_errors(formula: str, data: pd.DataFrame | None, exc: type | None, words: str) -> None:
    df = datasets.load("sleepstudy") if data is None else data
    if exc is None:
        build_design(formula, df)
        return
    with pytest.raises(exc) as info:
        build_design(formula, df)
    assert words in str(info.value)


def test_nobs_vs_number_of_random_effects() -> None:
    ss = datasets.load("sleepstudy")
    sub = ss[ss["Subject"].isin(["308", "309", "310"])]
    with pytest.raises(ModelError, match=r"number of observations \(=30\) <= number of random "
                                         r"effects \(=30\) for term \(0 \+ factor\(Days\) \| Subject\)"):
        build_design("Reaction ~ 1 + (0 + factor(Days) | Subject)", sub)


def test_data_must_be_a_dataframe() -> None:
    with pytest.raises(DataError, match="DataFrame"):
        build_design("Reaction ~ Days + (1 | Subject)", datasets.load("sleepstudy").to_dict())


# ---------------------------------------------------------------- new data


def test_spec_rebuilds_the_design() -> None:
    for name in ("cake", "hr2", "star", "pixel"):
        fx, d = fixture(name), design_for(name)
        df = load(fx["dataset"]).iloc[d.rows]
        assert isinstance(d.spec, DesignSpec)
        np.testing.assert_array_equal(d.spec.fixed_matrix(df), d.X)
        for t, (index, Xt) in zip(d.terms, d.spec.term_matrices(df, allow_new_levels=False)):
            np.testing.assert_array_equal(index, t.index)
            np.testing.assert_array_equal(Xt, t.Xt)


def test_spec_new_data_as_plain_strings() -> None:
    d = design_for("cake")
    cake = datasets.load("cake")
    plain = cake.astype({"recipe": str, "temperature": str, "replicate": str})
    np.testing.assert_array_equal(d.spec.fixed_matrix(plain), d.X)  # still contr.poly


def test_spec_new_levels() -> None:
    d = design_for("pastes")
    new = pd.DataFrame({"batch": ["A", "Z"], "cask": ["a", "b"]})
    got = d.spec.term_matrices(new, allow_new_levels=True)
    assert [g[0].tolist() for g in got] == [[0, -1], [0, -1]]
    with pytest.raises(DataError, match=r"'b:Z' of grouping factor 'cask:batch'"):
        d.spec.term_matrices(new)
    hr = design_for("hr1")
    new = pd.DataFrame({"baseHR": [80], "Time": [0.1], "Drug": ["q"], "Patient": ["201"]})
    with pytest.raises(DataError, match="'Drug' has level 'q'"):
        hr.spec.fixed_matrix(new)
    with pytest.raises(ColumnNotFoundError, match="'Time'"):
        hr.spec.fixed_matrix(new.drop(columns="Time"))


@pytest.mark.parametrize("stream", [False, True])
def test_pairs_are_sorted_by_target(stream):
    """partial_factor's segment sum declares its indices sorted: every constructor of the
    pair arrays must sort them by target (in memory and streamed)."""
    data = jaxmm.datasets.load("InstEval").iloc[:20000]
    formula = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
    if stream:
        chunks = (data.iloc[i : i + 5000] for i in range(0, len(data), 5000))
        blocks = jaxmm.lmer(formula, chunks).devfun.blocks
    else:
        blocks = jaxmm.mk_devfun(jaxmm.lformula(formula, data)).blocks
    t = np.asarray(blocks.pair_t)
    assert t.size > 1000 and np.all(np.diff(t) >= 0)
