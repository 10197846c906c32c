"""lme4 formula parsing: syntax forms, lme4's expansions, and error positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxmm.errors import FormulaError, ModelError
from jaxmm.formula import ParsedFormula, RandomTerm, parse_formula, r_deparse, to_formulaic

FIXTURES = Path(__file__).parent / "fixtures" / "lme4"


def terms(text: str) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(t.lhs, t.group, t.group_factors) for t in parse_formula(text).random]


# ---------------------------------------------------------------- syntax forms


@pytest.mark.parametrize(
    "text, expected",
    [
        ("y ~ x + (1|g)", [("1", "g", ("g",))]),
        ("y ~ x + (x|g)", [("x", "g", ("g",))]),
        ("y ~ x + (1+x|g)", [("1+x", "g", ("g",))]),
        ("y ~ x + (0+x|g)", [("0+x", "g", ("g",))]),
        ("y ~ x + (x-1|g)", [("x-1", "g", ("g",))]),
        ("y ~ x + (x||g)", [("1", "g", ("g",)), ("0 + x", "g", ("g",))]),
        ("y ~ x + (1 + x || g)", [("1", "g", ("g",)), ("0 + x", "g", ("g",))]),
        ("y ~ x + (0 + x || g)", [("0 + x", "g", ("g",))]),
        ("y ~ (x*z || g)", [("1", "g", ("g",)), ("0 + x", "g", ("g",)), ("0 + z", "g", ("g",)),
                            ("0 + x:z", "g", ("g",))]),
        ("y ~ (1|a:b)", [("1", "a:b", ("a", "b"))]),
        ("y ~ (1 | a : b)", [("1", "a:b", ("a", "b"))]),
        ("y ~ (1|batch/cask)", [("1", "cask:batch", ("cask", "batch")),
                                ("1", "batch", ("batch",))]),
        ("y ~ (1|a/b/c)", [("1", "c:(b:a)", ("c", "b", "a")), ("1", "b:a", ("b", "a")),
                           ("1", "a", ("a",))]),
        ("y ~ (1|plate) + (1|sample)", [("1", "plate", ("plate",)), ("1", "sample", ("sample",))]),
        ("y ~ (1|g) + (0 + x|g)", [("1", "g", ("g",)), ("0 + x", "g", ("g",))]),
        ("y ~ ((1|g))", [("1", "g", ("g",))]),
        ("y ~ (I(x^2) | g)", [("I(x**2)", "g", ("g",))]),
        ("y ~ (1|`my group`)", [("1", "my group", ("my group",))]),
    ],
)
def test_random_terms(text: str, expected: list) -> None:
    assert terms(text) == expected


def test_double_bar_with_nesting_follows_lme4_order() -> None:
    # expandDoubleVerts first, then expandSlash on each resulting term
    assert terms("y ~ (x || a/b)") == [
        ("1", "b:a", ("b", "a")), ("1", "a", ("a",)),
        ("0 + x", "b:a", ("b", "a")), ("0 + x", "a", ("a",)),
    ]


def test_terms_keep_formula_order() -> None:
    got = [t.group for t in parse_formula("y ~ (1|s) + (1|d) + (1|dept:service)").random]
    assert got == ["s", "d", "dept:service"]


@pytest.mark.parametrize(
    "text, fixed",
    [
        ("Reaction ~ Days + (Days|Subject)", "1 + Days"),
        ("y ~ (1|g)", "1"),
        ("y ~ 1 + (1|g)", "1"),
        ("y ~ 0 + x + (1|g)", "0 + x"),
        ("y ~ x + 0 + (1|g)", "x + 0"),
        ("y ~ x - 1 + (1|g)", "x - 1"),
        ("y ~ -1 + x + (1|g)", "-1 + x"),
        ("y ~ a*b + (1|g)", "1 + a*b"),
        ("y ~ a:b + c + (1|g)", "1 + a:b + c"),
        ("y ~ day + I(day^2) + (day|Dog)", "1 + day + I(day**2)"),
        ("y ~ scale(x) + log(z) + exp(w) + sqrt(v) + (1|g)",
         "1 + scale(x) + log(z) + exp(w) + sqrt(v)"),
        ("y ~ (a + b)^2 + (1|g)", "1 + (a + b)^2"),
        ("y ~ (1|g) + x", "1 + x"),
        ("y ~ x + (1|g) + z", "1 + x + z"),
    ],
)
def test_fixed_part(text: str, fixed: str) -> None:
    assert parse_formula(text).fixed == fixed


def test_parsed_formula_fields() -> None:
    f = parse_formula("log(y) ~ x + (x | g)")
    assert isinstance(f, ParsedFormula)
    assert f.text == "log(y) ~ x + (x | g)"
    assert f.response == "log(y)"
    assert f.random == (RandomTerm("x", "g", ("g",)),)
    assert f.random[0].label == "x | g"
    assert f.groups == ("g",)


def test_translation_to_formulaic_and_back() -> None:
    assert to_formulaic("I(x^2) + (a+b)^2") == "I(x**2) + (a+b)^2"
    assert to_formulaic("scale(x, center = FALSE)") == "scale(x, center = False)"
    assert r_deparse("I(day ** 2)") == "I(day^2)"
    assert r_deparse("log(x+1)") == "log(x + 1)"
    assert r_deparse("I(-x / 2)") == "I(-x/2)"
    assert r_deparse("Days") == "Days"


def test_fixture_formulas_parse() -> None:
    seen = 0
    for path in sorted(FIXTURES.glob("*.json")):
        fx = json.loads(path.read_text())
        if "formula" not in fx:
            continue
        f = parse_formula(fx["formula"])
        assert f.random, path.name
        seen += 1
    assert seen >= 30


def test_glmm_formulas_parse() -> None:
    f = parse_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)")
    assert f.response == "cbind(incidence, size - incidence)"
    assert f.fixed == "1 + period"
    f = parse_formula("r2 ~ (Anger + Gender + btype + situ) + (1 | id) + (1 | item)")
    assert f.fixed == "1 + (Anger + Gender + btype + situ)"
    assert [t.group for t in f.random] == ["id", "item"]


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "text, position, words",
    [
        ("y ~ x + (x|g", 8, "never closed"),
        ("y ~ x + x|g)", 11, "unmatched"),
        ("y x + (1|g)", 0, "missing '~'"),
        ("~ x + (1|g)", 0, "missing response"),
        ("y ~ ", 3, "missing terms"),
        ("y ~ x + (1|)", 11, "without a grouping factor"),
        ("y ~ x + (1 | )", 13, "without a grouping factor"),
        ("y ~ x + (|g)", 9, "without a left-hand side"),
        ("y ~ x + + (1|g)", 8, "empty term"),
        ("y ~ x + (1|g) +", 14, "empty term"),
        ("y ~ x + 1|g", 9, "in parentheses"),
        ("y ~ x*(1|g)", 8, "in parentheses"),
        ("y ~ (1|g|h)", 8, "exactly one"),
        ("y ~ x - (1|g)", 8, "cannot be removed"),
        ("y ~ x ~ z + (1|g)", 6, "exactly one"),
        ("y ~ (1|g+h)", 8, "grouping factor"),
        ("y ~ . + (1|g)", 4, "'.'"),
        ("y ~ x + (1|g) $ ", 10, "in parentheses"),
        ("y ~ x * * z + (1|g)", 4, "cannot parse the fixed-effects part"),
        ("y ~ x + (x * * z|g)", 9, "cannot parse the random-effects term"),
        ("y ~ x + #(1|g)", 8, "unexpected character"),
    ],
)
def test_syntax_errors_point_at_the_column(text: str, position: int, words: str) -> None:
    with pytest.raises(FormulaError) as info:
        parse_formula(text)
    err = info.value
    assert words in str(err)
    assert err.position == position
    lines = str(err).splitlines()
    assert lines[-2] == "  " + text.replace("\t", " ")
    assert lines[-1] == "  " + " " * position + "^"
    assert f"column {position + 1}" in lines[0]


def test_no_random_effects_is_a_model_error() -> None:
    with pytest.raises(ModelError, match=r"no random-effects terms.*OLS.*\(1 \| group\)"):
        parse_formula("y ~ x")


@pytest.mark.parametrize("bad", [None, 3, "", "   "])
def test_not_a_formula(bad: object) -> None:
    with pytest.raises(FormulaError):
        parse_formula(bad)  # type: ignore[arg-type]
