"""Scale: refusals before large allocations, level compaction (the benchmark itself lives in
benchmarks/scale.py)."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm.design import crossprod
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
    d = jaxmm.lformula("y ~ x + (1|g) + (1|h)", _crossed(4_000, 200, 50))
    monkeypatch.setattr(crossprod, "MAX_PAIRS", 1_000)
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
