"""Scale: refusals before large allocations, level compaction, the class update of randomly
crossed factors against the pair update (the benchmark itself lives in benchmarks/scale.py)."""

from __future__ import annotations

import tracemalloc

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm.core.devfun import DevFun
from jaxmm.design import crossprod, schur
from jaxmm.design.random import compact_codes


def _crossed(n: int, ng: int, nh: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"y": rng.standard_normal(n), "x": rng.standard_normal(n),
                         "g": rng.integers(0, ng, n), "h": rng.integers(0, nh, n)})


def test_dense_block_refused_before_allocating():
    d = jaxmm.lformula("y ~ x + (1|g) + (1|h)", _crossed(120_000, 30_000, 25_000))
    tracemalloc.start()
    try:
        with pytest.raises(jaxmm.ModelError, match=r"dense block of 2\d{4} x 2\d{4} \(\d+\.\d GiB\)"):
            crossprod.crossproducts(d.y, d.X, d.terms)
        with pytest.raises(jaxmm.ModelError, match="dense block"):
            jaxmm.mk_devfun(d)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # the 4+ GiB block was never allocated


def test_dense_pairs_refused(monkeypatch):
    # (x|g) first: no class update (that needs a scalar term 1), so the pair budget rules
    d = jaxmm.lformula("y ~ x + (x|g) + (1|h)", _crossed(4_000, 200, 50))
    monkeypatch.setattr(schur, "MAX_PAIRS", 1_000)
    with pytest.raises(jaxmm.ModelError, match="element pairs"):
        jaxmm.mk_devfun(d)


def test_compact_codes_both_paths():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 50, 200) * 1_000_003  # sparse in a large range: hashing path
    for c, size in ((codes, 50 * 1_000_003), (codes // 1_000_003, 50)):
        u, inv = compact_codes(c, size)
        u2, inv2 = np.unique(c, return_inverse=True)
        assert np.array_equal(u, u2) and np.array_equal(inv, inv2.reshape(-1))


def test_interaction_levels_unchanged():
    df = pd.DataFrame({"a": pd.Categorical(["x", "y", "x", "y"]), "b": [2, 1, 1, 2]})
    idx, levels = jaxmm.design.random.group_index(df, ("a", "b"))
    assert levels == ("x:1", "x:2", "y:1", "y:2") and idx.tolist() == [1, 2, 0, 3]


def _modes(formula: str, df: pd.DataFrame, reml: bool):
    d = jaxmm.lformula(formula, df)
    out = {}
    for mode in ("pairs", "classes"):
        layout, blocks = crossprod.crossproducts(d.y, d.X, d.terms, mode=mode)
        out[mode] = DevFun.from_numpy(layout, blocks, reml)
    return out


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", [
    "y ~ x + (1|g) + (1|h)",
    "y ~ x + (1|g) + (x|h) + (1|k)",
    "y ~ x + (1|g) + (x||h)",
])
def test_class_update_equals_pairs(formula, reml):
    f = _modes(formula, _crossed(3_000, 300, 40).assign(k=lambda d: d.h % 7), reml)
    assert f["classes"].blocks.cls_j.shape[0] > 0 and f["classes"].blocks.pair_j.shape[0] == 0
    assert f["pairs"].blocks.cls_j.shape[0] == 0
    for theta in (np.linspace(0.3, 1.2, f["pairs"].layout.n_theta),
                  np.linspace(1.5, 0.1, f["pairs"].layout.n_theta)):
        a, b = f["pairs"].value_and_grad(theta), f["classes"].value_and_grad(theta)
        assert abs(a[0] - b[0]) <= 1e-10 * abs(a[0])
        np.testing.assert_allclose(a[1], b[1], rtol=1e-8, atol=1e-8)


def test_class_update_fit_and_response_paths(monkeypatch):
    """auto picks classes above the pair threshold; fits, new responses (batch path),
    centering (float32 start) and the profile's shifted blocks agree with the pair mode."""
    from jaxmm.core.layout import with_response
    from jaxmm.core.objective import objective
    from jaxmm.inference.profile_solve import shift_fixed
    from jaxmm.optimize.float32 import center_blocks

    df = _crossed(2_000, 150, 30, seed=3)
    d = jaxmm.lformula("y ~ x + (1|g) + (1|h)", df)
    m1 = jaxmm.lmer("y ~ x + (1|g) + (1|h)", df, reml=False)
    monkeypatch.setattr(schur, "CLASS_MIN_PAIRS", 0)
    m2 = jaxmm.lmer("y ~ x + (1|g) + (1|h)", df, reml=False)
    assert m2.devfun.blocks.cls_j.shape[0] > 0 and m1.devfun.blocks.cls_j.shape[0] == 0
    assert abs(m1.deviance - m2.deviance) <= 1e-10 * abs(m1.deviance)
    np.testing.assert_allclose(m1.theta, m2.theta, rtol=1e-5)
    np.testing.assert_allclose(m1.fixef, m2.fixef, rtol=1e-6)
    theta = np.asarray(m1.theta)
    y2 = np.random.default_rng(5).standard_normal(d.nobs)
    crits = {}
    with jaxmm.x64():
        for name, m in (("pairs", m1), ("classes", m2)):
            lay, b = m.devfun.layout, m.devfun.blocks
            _, b2 = crossprod.crossproducts(y2, d.X, d.terms, mode=name)
            nb = with_response(b, lay, b2.C1[..., -1], b2.A[-1])
            cb = center_blocks(lay, jax.device_get(b), 0)
            sb = shift_fixed(b, lay, jnp.asarray([0.0, 1.0]), 0.3)
            crits[name] = [float(objective(jnp.asarray(theta), x, lay, False))
                                 for x in (nb, jax.tree_util.tree_map(jnp.asarray, cb), sb)]
    np.testing.assert_allclose(crits["pairs"], crits["classes"], rtol=1e-10)


def test_class_update_refused_when_too_large(monkeypatch):
    d = jaxmm.lformula("y ~ x + (1|g) + (1|h)", _crossed(4_000, 200, 50))
    monkeypatch.setattr(schur, "MAX_PAIRS", 1_000)
    monkeypatch.setattr(schur, "MAX_CLASS_BYTES", 1_000)
    with pytest.raises(jaxmm.ModelError, match="element pairs.*classes of levels"):
        jaxmm.mk_devfun(d)
    with pytest.raises(jaxmm.ModelError, match="class update"):
        crossprod.crossproducts(d.y, d.X, d.terms, mode="classes")
    monkeypatch.setattr(schur, "MAX_CLASS_BYTES", 2**30)
    assert jaxmm.mk_devfun(d).blocks.cls_j.shape[0] > 0  # pairs over budget: classes


def test_class_update_needs_scalar_first_term():
    d = jaxmm.lformula("y ~ x + (x|g) + (1|h)", _crossed(2_000, 200, 20))
    with pytest.raises(jaxmm.ModelError, match="one column per level"):
        crossprod.crossproducts(d.y, d.X, d.terms, mode="classes")


def test_pair_count_matches_pairs():
    d = jaxmm.lformula("y ~ x + (x|g) + (x||h) + (1|k)",
                       _crossed(2_000, 200, 20).assign(k=lambda f: f.h % 3))
    layout, blocks = crossprod.crossproducts(d.y, d.X, d.terms, pad=False)
    el = np.asarray(blocks.el_row), np.asarray(blocks.el_j)
    assert schur.pair_count(*el, layout) == blocks.pair_j.shape[0]
