"""``jax.jit`` for the batched programs, with XLA options chosen for their compile time.

A batched fit is one program of a few hundred small kernels (elementwise work over the
lanes, inside the optimizer's loop). On CPU, XLA's compile time of such a program goes
mostly to generating code kernel by kernel, and its defaults suit a few big kernels
better. These options apply to the batched programs only (``compiler_options``, not a
process-wide flag), and on CPU only:

- ``xla_cpu_use_fusion_emitters=False``: the classic loop emitters, about 35% less
  compile time than the MLIR fusion emitters on these programs, same run time;
- ``xla_cpu_experimental_ynn_fusion_type=""``: the tiny per-lane matrix products as
  plain loop kernels rather than library (YNNPACK) calls, whose per-call overhead
  dominates at these sizes (sleepstudy's bootstrap runs about twice as fast);
- ``xla_backend_optimization_level=1``: LLVM's -O1 (level 0 runs about half as fast;
  level 1 runs as fast as the default here and compiles faster).

A jaxlib that does not know one of the options (they are XLA debug options, renamed at
times) compiles the program with XLA's defaults instead; results are the same either way.

Example:
    >>> import jax.numpy as jnp
    >>> f = batch_jit(lambda x, k: x * k, static_argnames=("k",))
    >>> with jaxmm.x64():
    ...     float(f(jnp.ones(3), k=2).sum())
    6.0
"""

from __future__ import annotations

from collections.abc import Callable

from ..programs import (
    CPU_OPTIONS,  # XLA options of the batched programs on CPU (see above)
    options_jit,
)


def batch_jit(fun: Callable, static_argnames: tuple[str, ...] = ()) -> Callable:
    """``jax.jit(fun, static_argnames=...)``, compiled with :data:`CPU_OPTIONS` when the
    default backend is the CPU (plain ``jax.jit`` elsewhere, or where this jaxlib rejects
    an option: :func:`jaxmm.programs.options_jit`). The result is called like ``fun``;
    ``.trace`` and ``.lower`` act on the variant in use.

    Example:
        >>> import jax.numpy as jnp
        >>> g = batch_jit(lambda x: x + 1)
        >>> with jaxmm.x64():
        ...     g(jnp.zeros(2)).tolist()
        [1.0, 1.0]
    """
    return options_jit(fun, CPU_OPTIONS, static_argnames)
