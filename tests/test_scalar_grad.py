"""The closed-form gradient of all-scalar models (jaxmm.core.scalar) against autodiff of
the generic blocked criterion, and the target-sorted pairs it relies on."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmm
from jaxmm.core import scalar
from jaxmm.core.blocked import partial_factor
from jaxmm.core.layout import row_weights
from jaxmm.core.logchol import weighted_logchol
from jaxmm.core.objective import hessian


def generic(theta, blocks, layout, reml):
    """The criterion through the generic (any q) path, differentiated by plain autodiff."""
    part = partial_factor(theta, blocks, layout)
    N = blocks.n - (layout.p if reml else 0)
    w = row_weights(layout, reml, N, theta.dtype)
    return part.logdet1 + weighted_logchol(part.S, w) + N * (1.0 + jnp.log(2.0 * math.pi / N))


MODELS = {
    "penicillin": ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin"),
    "pastes": ("strength ~ 1 + (1|batch/sample)", "Pastes"),
    "insteval": ("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", "InstEval"),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def devfun(request):
    formula, data = MODELS[request.param]
    return jaxmm.mk_devfun(jaxmm.lformula(formula, jaxmm.datasets.load(data)))


@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("theta", [[0.7, 0.4, 0.3], [1e-3, 2.0, 0.0], [0.0, 0.5, 1.5]])
def test_closed_form_gradient_equals_autodiff(devfun, reml, theta):
    lay, blocks = devfun.layout, devfun.blocks
    with jaxmm.x64():
        th = jnp.asarray(theta[: lay.n_theta])
        v0, g0 = jax.jit(jax.value_and_grad(generic), static_argnums=(2, 3))(th, blocks, lay, reml)
        v1, g1 = jax.jit(scalar.gradient, static_argnums=(2, 3))(th, blocks, lay, reml)
        v2, g2 = jax.value_and_grad(scalar.objective)(th, blocks, lay, reml)
    scale = 1.0 + float(np.max(np.abs(np.asarray(g0))))
    assert abs(float(v1 - v0)) <= 1e-9 * abs(float(v0))
    assert abs(float(v2 - v0)) <= 1e-9 * abs(float(v0))
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), atol=1e-9 * scale)
    np.testing.assert_allclose(np.asarray(g2), np.asarray(g0), atol=1e-9 * scale)


def test_large_scalar_models_use_the_closed_form(devfun):
    lay = devfun.layout
    assert scalar.applies(lay) == (lay.r >= scalar.MIN_R)


def test_hessian_and_data_derivatives_through_the_rule(monkeypatch):
    """Forward-over-reverse Hessian and derivatives with respect to y (functional API) go
    through the custom rule and equal the generic path's."""
    d = jaxmm.functional.model("diameter ~ 1 + (1|plate) + (1|sample)", jaxmm.datasets.load("Penicillin"))
    with jaxmm.x64():
        th = jnp.asarray([1.3, 3.2])
        y = jnp.asarray(d.y)
        ref_h = jax.hessian(generic)(th, d.blocks, d.layout, True)
        ref_gy = jax.grad(jaxmm.functional.objective, 2)(th, d, y)
        monkeypatch.setattr(scalar, "MIN_R", 0)
        assert scalar.applies(d.layout)
        h = hessian(th, d.blocks, d.layout, True)
        gy = jax.jit(jax.grad(jaxmm.functional.objective, 2))(th, d, y)
        gth = jax.grad(jaxmm.functional.objective)(th, d, y)
    np.testing.assert_allclose(np.asarray(h), np.asarray(ref_h), rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(np.asarray(gy), np.asarray(ref_gy), rtol=1e-8, atol=1e-10)
    with jaxmm.x64():
        ref_gth = jax.grad(generic)(th, d.blocks, d.layout, True)
    np.testing.assert_allclose(np.asarray(gth), np.asarray(ref_gth), rtol=1e-8)


def test_fit_through_the_rule_matches(monkeypatch):
    data = jaxmm.datasets.load("Pastes")
    ref = jaxmm.lmer("strength ~ 1 + (1|batch/sample)", data)
    monkeypatch.setattr(scalar, "MIN_R", 0)
    monkeypatch.setenv("JAXMM_NO_COMPILATION_CACHE", "1")  # no stored program: trace anew
    jax.clear_caches()
    m = jaxmm.lmer("strength ~ 1 + (1|batch/sample)", data)
    jax.clear_caches()
    assert abs(m.reml_criterion - ref.reml_criterion) <= 1e-9 * abs(ref.reml_criterion)
    np.testing.assert_allclose(m.theta_vector, ref.theta_vector, rtol=1e-5, atol=1e-6)
    assert m.opt.converged


@pytest.mark.parametrize("stream", [False, True])
def test_pairs_are_sorted_by_target(stream):
    data = jaxmm.datasets.load("InstEval").iloc[:20000]
    formula = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
    if stream:
        chunks = (data.iloc[i : i + 5000] for i in range(0, len(data), 5000))
        blocks = jaxmm.lmer(formula, chunks).devfun.blocks
    else:
        blocks = jaxmm.mk_devfun(jaxmm.lformula(formula, data)).blocks
    t = np.asarray(blocks.pair_t)
    assert t.size > 1000 and np.all(np.diff(t) >= 0)
