"""Scoped numerics: float64 and one BLAS thread for jaxmm's own work, nothing global.

Every public entry point runs its JAX work inside :func:`x64`, so a caller's own JAX code
keeps its default dtype. Use it yourself when you call core functions directly.

:func:`compute` adds one BLAS thread (threadpoolctl) around jaxmm's computations, restoring
the caller's setting afterwards: the dense factorizations here are small enough that
OpenBLAS threads only cost time (a 1159 x 1159 Cholesky took 0.6 s instead of 15 ms with
default threads on a 2-core machine), and concurrent multi-threaded OpenBLAS calls from
XLA's threads can deadlock.

Example:
    >>> import jax.numpy as jnp
    >>> with x64():
    ...     print(jnp.ones(2).dtype)
    float64
    >>> print(jnp.ones(2).dtype)
    float32
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

import jax


@contextlib.contextmanager
def x64() -> Iterator[None]:
    """Context manager enabling 64-bit JAX types for the enclosed code only.

    Example:
        >>> import jax.numpy as jnp
        >>> with jaxmm.x64():
        ...     print(jnp.arange(2.0).dtype)
        float64
    """
    if jax.config.jax_enable_x64:
        yield
        return
    with jax.enable_x64(True):
        yield


_blas = None  # threadpoolctl's controllers of the loaded BLAS libraries (found once)


@contextlib.contextmanager
def compute() -> Iterator[None]:
    """float64 (scoped) and a single BLAS thread for the enclosed code (each library's
    setting is restored afterwards; only libraries not already at one thread are touched)."""
    global _blas
    if _blas is None:
        # jaxlib's CPU Cholesky and triangular solves run on scipy's OpenBLAS: load it
        # before the libraries are listed, or it is never pinned (imported lazily, it was
        # found too late once and InstEval's fit ran 1.5x slower on two BLAS threads)
        import scipy.linalg.cython_lapack  # noqa: F401
        from threadpoolctl import ThreadpoolController

        _blas = ThreadpoolController().select(user_api="blas").lib_controllers
    changed = []
    for lib in _blas:
        n = lib.get_num_threads()
        if n != 1:
            lib.set_num_threads(1)
            if n is not None:  # an unknown setting cannot be restored
                changed.append((lib, n))
    try:
        with x64():
            yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)


_cache_done = False


def enable_compilation_cache() -> None:
    """Point JAX's persistent compilation cache at ``~/.cache/jaxmm/xla`` (once).

    A second process fitting a model of the same shape then loads compiled code instead of
    recompiling. Respects a cache directory the user already configured; disable with the
    environment variable ``JAXMM_NO_COMPILATION_CACHE=1``.
    """
    global _cache_done
    if _cache_done or os.environ.get("JAXMM_NO_COMPILATION_CACHE"):
        return
    _cache_done = True
    if jax.config.jax_compilation_cache_dir:
        return
    path = os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "jaxmm", "xla"
    )
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
