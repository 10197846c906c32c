"""jaxmm's BFGS / L-BFGS (jaxmm.optimize.bfgs): the fitting program's optimizer and the
profiles'. Each loop step evaluates the objective once; the strong-Wolfe line search is a
state carried between steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmm
from jaxmm.optimize.bfgs import bfgs


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.mark.parametrize("memory", [None, 5])
def test_rosenbrock_converges(memory):
    with jaxmm.x64():
        r = jax.jit(lambda x: bfgs(rosenbrock, x, gtol=1e-8, memory=memory))(
            jnp.array([-1.2, 1.0, -0.5, 0.8]))
        assert int(r.status) == 0
        np.testing.assert_allclose(np.asarray(r.x), 1.0, atol=1e-6)
        assert float(jnp.max(jnp.abs(r.grad))) <= 1e-8
        # Wolfe steps: most trial points are accepted
        assert int(r.n_eval) < 2 * int(r.n_iter) + 10 < 200


def test_status_codes():
    with jaxmm.x64():
        capped = bfgs(rosenbrock, jnp.array([-1.2, 1.0]), max_iter=3)
        assert int(capped.status) == 2 and int(capped.n_iter) == 3
        bad = bfgs(lambda x: jnp.log(x[0] - 5.0) + x[1] ** 2, jnp.array([1.0, 1.0]))
        assert int(bad.status) == 3 and int(bad.n_eval) == 1


def test_huge_first_step_backs_off():
    """A trial step into a non-finite region is bracketed and shrunk, not accepted."""
    def f(x):
        return jnp.where(x[0] > 2.0, jnp.inf, (x[0] - 1.9) ** 2 + x[1] ** 2)

    with jaxmm.x64():
        r = bfgs(f, jnp.array([-50.0, 3.0]), gtol=1e-10)
        assert int(r.status) == 0
        np.testing.assert_allclose(np.asarray(r.x), [1.9, 0.0], atol=1e-6)


def test_vmap_matches_single_runs():
    starts = jnp.array([[-1.2, 1.0], [2.0, 2.5], [0.0, 0.0]])
    with jaxmm.x64():
        batched = jax.vmap(lambda x: bfgs(rosenbrock, x, memory=4).x)(starts)
        for i in range(starts.shape[0]):
            single = bfgs(rosenbrock, starts[i], memory=4).x
            np.testing.assert_allclose(np.asarray(batched[i]), np.asarray(single), rtol=1e-12)


def test_fit_hessian_matches_autodiff():
    """The fitting program's Hessian (differences of the exact gradient, taken in the
    optimizer's own loop) against forward-over-reverse autodiff at the same theta."""
    m = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", jaxmm.datasets.load("sleepstudy"))
    H = m.devfun.hessian(m.opt.theta)
    np.testing.assert_allclose(m.opt.hessian, H, rtol=1e-6, atol=1e-6 * np.abs(H).max())
    assert m.opt.n_eval < 20 and m.opt.converged
