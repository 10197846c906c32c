"""dtype="float32": theta found in single precision on centered data, reported in float64."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import jaxmm
from jaxmm.design.crossprod import crossproducts
from jaxmm.optimize.float32 import center_blocks


def _offset_data(seed: int = 2, n: int = 800) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 50, n), rng.integers(0, 6, n)
    x = 1000 + 10 * rng.standard_normal(n)  # large means: float32 needs centering
    y = 5000 + 0.3 * x + rng.standard_normal(50)[g] * 2 + rng.standard_normal(6)[h] + rng.standard_normal(n)
    return pd.DataFrame({"y": y, "x": x, "g": g, "h": h})


@pytest.mark.parametrize("formula,reml", [("y ~ x + (1|g) + (1|h)", True),
                                          ("y ~ x + (x|g)", False)])
def test_float32_reports_the_float64_criterion(formula, reml):
    df = _offset_data()
    m64 = jaxmm.lmer(formula, df, reml=reml)
    m32 = jaxmm.lmer(formula, df, reml=reml, dtype="float32")
    assert abs(m32.objective / m64.objective - 1) < 1e-8
    assert np.allclose(m32.fixef, m64.fixef, rtol=1e-5)
    assert m32.devfun.blocks.A.dtype == np.float64  # reported from float64 blocks


def test_centering_leaves_the_criterion_unchanged():
    df = _offset_data(3)
    d = jaxmm.lformula("y ~ x + (1|g) + (1|h)", df)
    layout, blocks = crossproducts(d.y, d.X, d.terms)
    c = center_blocks(layout, blocks, 0)
    f, fc = (jaxmm.core.devfun.DevFun.from_numpy(layout, b, True) for b in (blocks, c))
    for theta in ([0.5, 0.2], [2.0, 0.0], [1.0, 1.0]):
        # exact in exact arithmetic; float64 cancellation in the uncentered blocks
        # (y'y ~ 2e10 here) limits the agreement to ~1e-9
        assert abs(fc(theta) / f(theta) - 1) < 1e-8
    # the centered [X y] block has zero cross terms with the intercept
    rz = layout.rz
    assert np.allclose(c.A[rz, rz + 1 :], 0, atol=1e-6)


def test_float32_bad_dtype():
    with pytest.raises(jaxmm.ModelError, match="dtype"):
        jaxmm.lmer("y ~ x + (1|g)", _offset_data(), dtype="float16")


def test_float64_fit_is_optimized_on_centered_blocks():
    """With x ~ 1000 +- 10 in (x | g) the uncentered [X y] blocks lose the gradient's 4th
    digit to cancellation; lmer optimizes on centered blocks (the same criterion), so it
    converges to the optimum that the uncentered criterion also confirms."""
    from jaxmm.core.devfun import DevFun
    from jaxmm.optimize.lmm import run_fit

    df = _offset_data()
    d = jaxmm.lformula("y ~ x + (x|g)", df)
    layout, blocks = crossproducts(d.y, d.X, d.terms)
    f = DevFun.from_numpy(layout, blocks, False, icpt=0)
    res, opt = run_fit(f, np.array([1.0, 0.0, 1.0]))
    assert opt.converged and not opt.warnings
    fc = DevFun.from_numpy(layout, center_blocks(layout, blocks, 0), False)
    assert abs(opt.fmin / fc(opt.theta) - 1) < 1e-12  # reported: the centered criterion
    # the same function uncentered, up to that form's own rounding (~8e-8 here: y'y ~ 2e10)
    assert abs(f(opt.theta) / opt.fmin - 1) < 1e-6
    # estimates come from the blocks as given: beta on the original x scale
    m = jaxmm.lmer("y ~ x + (x|g)", df, reml=False)
    assert np.allclose(m.fixef.to_numpy(), np.asarray(res.estimates.beta), rtol=1e-6)
    assert abs(m.fixef["x"] - 0.3) < 0.1
