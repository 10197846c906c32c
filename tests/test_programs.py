"""The on-disk cache of exported programs (jaxmm.programs): stored once, loaded by a later
call without tracing, keyed so that changed code or shapes never reuse a stale program."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxmm
from jaxmm import programs


@pytest.fixture()
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("JAXMM_NO_COMPILATION_CACHE", raising=False)
    monkeypatch.setattr(programs, "_loaded", {})
    return tmp_path / "jaxmm" / "export"


def test_stored_then_loaded_without_tracing(fresh_cache, monkeypatch):
    calls = []

    @jax.jit
    def f(x):
        calls.append(1)  # runs only while tracing
        return jnp.sum(x**2)

    x = jnp.arange(4.0)
    assert float(programs.run_cached("test.f", f, (), x)) == 14.0
    assert len(list(fresh_cache.glob("*.jaxexport"))) == 1
    monkeypatch.setattr(programs, "_loaded", {})  # a new process, as far as the cache knows
    calls.clear()
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("re-exported"))
    assert float(programs.run_cached("test.f", f, (), x + 1)) == 30.0
    assert calls == []


def test_key_depends_on_static_shapes_and_source(monkeypatch):
    x = np.zeros(3)
    k = programs.program_key("p", (1,), (x,))
    assert k != programs.program_key("p", (1,), (np.zeros(4),))
    assert k != programs.program_key("p", (1,), (np.zeros(3, np.int32),))
    assert k != programs.program_key("q", (1,), (x,))
    monkeypatch.setattr(programs, "_source_hash", "edited")
    assert k != programs.program_key("p", (1,), (x,))


def test_corrupt_file_falls_back(fresh_cache):
    f = jax.jit(lambda x: x * 2.0)
    x = jnp.ones(2)
    key = programs.program_key("test.g", (), (x,))
    fresh_cache.mkdir(parents=True)
    (fresh_cache / f"{key}.jaxexport").write_bytes(b"not a program")
    np.testing.assert_allclose(programs.run_cached("test.g", f, (), x), [2.0, 2.0])
    assert not (fresh_cache / f"{key}.jaxexport").exists()


def test_lmer_through_the_stored_program_matches(fresh_cache, monkeypatch):
    data = jaxmm.datasets.load("sleepstudy")
    a = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", data)
    monkeypatch.setattr(programs, "_loaded", {})
    b = jaxmm.lmer("Reaction ~ Days + (Days|Subject)", data)
    assert len(list(fresh_cache.glob("*.jaxexport"))) == 1
    assert a.opt.fmin == b.opt.fmin
    np.testing.assert_array_equal(a.theta_vector, b.theta_vector)


def test_old_programs_pruned(fresh_cache, monkeypatch):
    monkeypatch.setattr(programs, "MAX_FILES", 2)
    for n in range(4):
        programs.run_cached(f"test.prune{n}", jax.jit(lambda x: x + 1.0), (), jnp.ones(n + 1))
    assert len(list(fresh_cache.glob("*.jaxexport"))) == 2


def test_compiler_options_apply_and_an_unknown_one_falls_back(fresh_cache):
    """The small models' fitting program compiles with CPU_OPTIONS (same results); an
    option this jaxlib does not know means XLA's defaults, not an error."""
    f = jax.jit(lambda x: jnp.sum(jnp.sin(x) ** 2))
    x = jnp.arange(5.0)
    want = float(f(x))
    got = programs.run_cached("test.opts", f, (), x, compiler_options=programs.CPU_OPTIONS)
    assert float(got) == pytest.approx(want, rel=1e-12)
    got = programs.run_cached("test.opts_bad", f, (), x,
                              compiler_options={"xla_jaxmm_no_such_option": True})
    assert float(got) == pytest.approx(want, rel=1e-12)
    # a known option with a value this jaxlib does not know: the defaults too
    got = programs.run_cached("test.opts_bad_value", f, (), x, compiler_options={
        "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_NO_SUCH_TYPE"})
    assert float(got) == pytest.approx(want, rel=1e-12)


def test_compiler_options_apply_with_the_store_off(monkeypatch):
    """With the program store off, the options still apply (the same program runs), and a
    rejected one still falls back."""
    monkeypatch.setenv("JAXMM_NO_COMPILATION_CACHE", "1")
    f = jax.jit(lambda x: jnp.sum(jnp.cos(x) ** 2))
    x = jnp.arange(4.0)
    want = float(f(x))
    for name, opts in [("test.off_opts", programs.LARGE_CPU_OPTIONS),
                       ("test.off_bad", {"xla_jaxmm_no_such_option": True})]:
        assert float(programs.run_cached(name, f, (), x, compiler_options=opts)) == \
            pytest.approx(want, rel=1e-12)
        assert programs._optioned[(name, ())] is not None


def test_glmer_through_the_stored_programs_matches(fresh_cache, monkeypatch):
    """glmer's deviance program and its finalize program are stored once; a later process
    (here: a cleared in-memory table) loads them and fits the same model."""
    cb = jaxmm.datasets.load("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    a = jaxmm.glmer(f, cb, family="binomial")
    assert len(list(fresh_cache.glob("*.jaxexport"))) == 2
    monkeypatch.setattr(programs, "_loaded", {})
    monkeypatch.setattr(jax.export, "export", lambda *a, **k: pytest.fail("re-exported"))
    b = jaxmm.glmer(f, cb, family="binomial")
    assert a.opt.fmin == b.opt.fmin
    np.testing.assert_array_equal(a.fixef.to_numpy(), b.fixef.to_numpy())
    np.testing.assert_allclose(a.stderr.to_numpy(), b.stderr.to_numpy(), rtol=1e-12)
