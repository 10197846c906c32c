"""Streamed fits (chunks, iterators, Parquet) equal the in-memory fit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import jaxmm


def _data(seed: int = 3, n: int = 600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 40, n)
    h = rng.choice(["u", "v", "w", "x", "z"], n)
    f = rng.choice(["lo", "mid", "hi"], n)
    x = rng.standard_normal(n)
    y = 2 + 0.5 * x + rng.standard_normal(40)[g] + 0.7 * rng.standard_normal(5)[
        pd.Series(h).map({"u": 0, "v": 1, "w": 2, "x": 3, "z": 4}).to_numpy()] \
        + (f == "hi") * 0.3 + rng.standard_normal(n)
    df = pd.DataFrame({"y": y, "x": x, "g": g, "h": h, "f": f, "k": rng.integers(0, 3, n)})
    df.loc[[5, 77, 300], "x"] = np.nan  # dropped rows
    return df


def _chunks(df: pd.DataFrame) -> list[pd.DataFrame]:
    # the first chunk lacks level "z" of h, g >= 20 and "hi" of f; sizes uneven
    low = (df["g"] < 20) & (df["h"] != "z") & (df["f"] != "hi")
    return [df[low].iloc[:150], df[~low].iloc[:200], pd.concat([df[low].iloc[150:], df[~low].iloc[200:]])]


def _close(a, b, tol=1e-10):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert np.allclose(a, b, rtol=tol, atol=tol * np.abs(b).max()), (a, b)


@pytest.mark.parametrize("formula", [
    "y ~ x + f + (1|g) + (1|h)",
    "y ~ x + (x|g)",
    "y ~ x + (1|g) + (1|h:k)",
])
def test_streamed_equals_in_memory(formula):
    df = _data()
    m = jaxmm.lmer(formula, df)
    s = jaxmm.lmer(formula, _chunks(df))
    assert s.nobs == m.nobs and s.n_dropped == m.n_dropped == 3 and s.ngroups == m.ngroups
    _close(s.objective, m.objective)
    _close(s.theta, m.theta)
    _close(s.fixef, m.fixef)
    # the criterion itself, at the same theta
    _close(s.devfun(m.theta_vector), m.devfun(m.theta_vector), 1e-11)
    assert list(s.fixef.index) == list(m.fixef.index)
    assert [t.levels for t in s.terms] == [t.levels for t in m.terms]
    re_s, re_m = s.ranef(), m.ranef()
    assert re_s[["grpvar", "term", "grp"]].equals(re_m[["grpvar", "term", "grp"]])
    _close(re_s[["condval", "condsd"]].to_numpy(), re_m[["condval", "condsd"]].to_numpy(), 1e-8)


def test_iterator_and_function_sources():
    df = _data(4)
    m = jaxmm.lmer("y ~ x + (1|g)", df, reml=False)
    gen = (c for c in _chunks(df))
    s1 = jaxmm.lmer("y ~ x + (1|g)", gen, reml=False)  # one shot: spilled to disk in pass 1
    s2 = jaxmm.lmer("y ~ x + (1|g)", lambda: iter(_chunks(df)), reml=False)
    _close(s1.objective, m.objective)
    _close(s2.objective, m.objective)


def test_parquet_directory(tmp_path):
    pytest.importorskip("pyarrow")
    df = _data(5)
    for i, c in enumerate(_chunks(df)):
        c.to_parquet(tmp_path / f"part{i}.parquet", index=False)
    m = jaxmm.lmer("y ~ x + f + (1|g) + (1|h)", df)
    s = jaxmm.lmer("y ~ x + f + (1|g) + (1|h)", str(tmp_path))
    _close(s.objective, m.objective)
    one = tmp_path / "one.parquet"
    df.to_parquet(one, index=False)
    from jaxmm.design.stream import stream_design

    d, layout, _ = stream_design("y ~ x + f + (1|g) + (1|h)", one, chunk_rows=128)
    assert d.nobs == m.nobs and layout == m.devfun.layout


def test_streamed_refusals():
    df = _data(6)
    s = jaxmm.lmer("y ~ x + (1|g)", _chunks(df))
    with pytest.raises(jaxmm.DataError, match="streamed data"):
        s.fitted()
    with pytest.raises(jaxmm.DataError, match="stateful transform"):
        jaxmm.lmer("y ~ scale(x) + (1|g)", _chunks(df))
    with pytest.raises(jaxmm.ModelError, match="rank deficient"):
        jaxmm.lmer("y ~ x + I(2 * x) + (1|g)", _chunks(df))
    with pytest.raises(jaxmm.DataError, match="lacks column"):
        jaxmm.lmer("y ~ x + (1|g)", [df, df.drop(columns="x")])
    with pytest.raises(jaxmm.DataError, match="DataFrame"):
        jaxmm.lmer("y ~ x + (1|g)", [df, 3])
