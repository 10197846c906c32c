"""Compiled programs that a new process loads instead of re-tracing.

JAX's persistent compilation cache (see :func:`jaxmm.precision.enable_compilation_cache`)
skips XLA's compile in a second process, but not the Python tracing and lowering that
come first — for the LMM fitting program most of a cached cold start (sleepstudy: 0.4 s
of tracing for a 1 ms fit). :func:`run_cached` stores each program once as a serialized
``jax.export`` artifact under ``~/.cache/jaxmm/export``, keyed by the program, its static
arguments, the shapes and dtypes of its inputs, the backend, and the versions of JAX and
of jaxmm's own source (a hash of its files, so an edited checkout never runs a stale
program). A later process deserializes it, and XLA's cache supplies the executable.

Off with ``JAXMM_NO_COMPILATION_CACHE=1`` (as the compilation cache). Any failure to
export, write or read falls back to the ordinary ``jax.jit`` path.
"""

from __future__ import annotations

import hashlib
import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np

_SERIALIZABLE: list[type] = []
_loaded: dict[str, Callable] = {}
_source_hash: str | None = None


def _register_pytrees() -> None:
    """NamedTuples that cross a program's boundary, registered once for serialization."""
    if _SERIALIZABLE:
        return
    from jax import export

    from .core.layout import Blocks
    from .core.glmm_system import Factor
    from .core.pirls import GlmmData, PirlsResult
    from .family.families import Response
    from .core.solve import Estimates
    from .optimize.lbfgs import Solution
    from .optimize.lmm import Centered, FitResult

    for T in (Blocks, Estimates, Solution, FitResult, Centered, GlmmData, PirlsResult, Factor,
              Response):
        export.register_namedtuple_serialization(T, serialized_name=f"jaxmm.{T.__name__}")
        _SERIALIZABLE.append(T)


def source_hash() -> str:
    """Hash of jaxmm's source files (computed once per process).

    Example:
        >>> len(source_hash())
        16
    """
    global _source_hash
    if _source_hash is None:
        h = hashlib.sha256()
        root = Path(__file__).parent
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
        _source_hash = h.hexdigest()[:16]
    return _source_hash


_paths: dict[str | None, Path] = {}  # the directory per value of XDG_CACHE_HOME


def _directory() -> Path | None:
    """The directory of stored programs (made when a program is first stored), or None
    when the cache is off."""
    if os.environ.get("JAXMM_NO_COMPILATION_CACHE"):
        return None
    xdg = os.environ.get("XDG_CACHE_HOME")
    path = _paths.get(xdg)
    if path is None:
        base = os.path.expanduser("~/.cache") if xdg is None else xdg
        path = _paths[xdg] = Path(base) / "jaxmm" / "export"
    return path


def program_key(name: str, static: tuple, args: tuple) -> str:
    """Cache key of a program: name, static arguments, input shapes and dtypes, backend,
    JAX version and jaxmm's source.

    Example:
        >>> import numpy as np
        >>> a = program_key("f", (1,), (np.zeros(3),))
        >>> a == program_key("f", (1,), (np.ones(3),)), a == program_key("f", (2,), (np.zeros(3),))
        (True, False)
    """
    leaves, tree = jax.tree_util.tree_flatten(args)
    shapes = [(tuple(jax.numpy.shape(x)), str(jax.numpy.result_type(x))) for x in leaves]
    text = repr((name, static, str(tree), shapes, jax.__version__, jax.default_backend(),
                 bool(jax.config.jax_enable_x64), source_hash()))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


#: XLA options chosen for compile time on the CPU (:mod:`jaxmm.batch.compiled` says why):
#: the batched programs and the small models' fitting program use them.
CPU_OPTIONS: dict[str, object] = {
    "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_experimental_ynn_fusion_type": "",
    "xla_backend_optimization_level": 1,
}

#: XLA options of the large models' fitting program on the CPU: YNNPACK for the matrix
#: products only, not for XLA's reductions and elementwise fusions. Each YNNPACK fusion
#: builds its executable on first use (~6 ms, ~0.3 s for InstEval's ~90), and the reductions
#: and elementwise loops ran no faster under it: InstEval's fit 0.75 -> 0.69 s warm, its
#: first run 1.07 -> 1.00 s; star 128 -> 119 ms, first run 218 -> 160 ms.
LARGE_CPU_OPTIONS: dict[str, object] = {
    "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT",
}


def rejected_option(err: Exception) -> bool:
    """Whether a compile failed because this jaxlib does not know an XLA option or one of
    its values (the caller then compiles with XLA's defaults).

    Example:
        >>> rejected_option(ValueError("No such compile option: 'xla_foo'"))
        True
    """
    text = str(err)
    return "compile option" in text or "While setting option" in text


#: Results with at most this many numbers come back from the device as one packed array.
PACK_MAX = 1 << 16


def run_cached(name: str, fun: Callable, static: tuple, *args: Any, to_host: bool = False,
               compiler_options: dict | None = None):
    """Call ``fun(*args)`` through the on-disk export cache.

    ``fun`` is a function of the array arguments only (NumPy or JAX), already compiled
    in-process (it calls a ``jax.jit`` function; it runs as is when the cache is off or
    fails), and ``static`` is everything else it depends on (the jit's static arguments).
    With ``to_host`` the result comes back as NumPy arrays, small results in one transfer
    (every output packed into one vector on the device). ``compiler_options`` (XLA options,
    e.g. :data:`jaxmm.batch.compiled.CPU_OPTIONS`) apply to the stored program's compile on
    the CPU; a jaxlib that rejects one compiles with the defaults.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> square_sum = jax.jit(lambda x: jnp.sum(x * x))
        >>> float(run_cached("doc.square_sum", square_sum, (), jnp.arange(3.0)))
        5.0
    """
    directory = _directory()
    opts = compiler_options if jax.default_backend() == "cpu" else None
    if directory is None:
        out = _with_options(name, fun, static, opts)(*args)
        return jax.device_get(out) if to_host else out
    mem_key, entry = _lookup(directory, name, fun, static, args, opts)
    try:
        return entry(args, to_host)
    except Exception as err:  # an XLA option this jaxlib does not know: the defaults
        if entry.options is None or not rejected_option(err):
            raise
        entry = _loaded[mem_key] = _Entry(entry.exported, fun, None)
        return entry(args, to_host)


def options_jit(fun: Callable, options: dict, static_argnames: tuple[str, ...] = ()) -> Callable:
    """``jax.jit(fun, static_argnames=...)`` compiled with the XLA ``options`` when the
    default backend is the CPU (plain ``jax.jit`` elsewhere, or from the first compile on
    which this jaxlib rejects an option or its value). Called like ``fun``; ``.trace`` and
    ``.lower`` act on the variant in use.

    Example:
        >>> import jax.numpy as jnp
        >>> g = options_jit(lambda x: x + 1, {"xla_jaxmm_no_such_option": True})
        >>> with jaxmm.x64():
        ...     g(jnp.zeros(2)).tolist()
        [1.0, 1.0]
    """
    plain = jax.jit(fun, static_argnames=static_argnames)
    tuned = jax.jit(fun, static_argnames=static_argnames, compiler_options=options)
    state: dict[str, bool] = {}

    def pick():
        if "tuned" not in state:
            state["tuned"] = jax.default_backend() == "cpu"
        return tuned if state["tuned"] else plain

    @functools.wraps(fun)
    def call(*args, **kwargs):
        prog = pick()
        if prog is plain:
            return plain(*args, **kwargs)
        try:
            return tuned(*args, **kwargs)
        except Exception as err:
            if not rejected_option(err):
                raise
            state["tuned"] = False
            return plain(*args, **kwargs)

    call.lower = lambda *a, **k: pick().lower(*a, **k)  # type: ignore[attr-defined]
    call.trace = lambda *a, **k: pick().trace(*a, **k)  # type: ignore[attr-defined]
    return call


_optioned: dict[tuple, Callable] = {}  # name, static -> fun compiled with the options


def _with_options(name: str, fun: Callable, static: tuple, opts: dict | None) -> Callable:
    """``fun`` compiled with the XLA options (when the store is off: the same program as a
    stored one runs), once per program; ``fun`` itself without options."""
    if not opts:
        return fun
    key = (name, static)
    if key not in _optioned:
        _optioned[key] = options_jit(fun, opts)
    return _optioned[key]


def cached_program(name: str, fun: Callable, static: tuple, *args: Any) -> Callable:
    """The stored program of ``fun`` at these arguments' shapes, as a callable taking the
    same arguments (for a program called many times, such as glmer's deviance at each
    optimizer step: the lookup is done once). ``fun`` itself when the cache is off or
    exporting fails. Arguments as for :func:`run_cached`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = cached_program("doc.double", jax.jit(lambda x: 2 * x), (), jnp.arange(3.0))
        >>> f(jnp.ones(3)).tolist()
        [2.0, 2.0, 2.0]
    """
    directory = _directory()
    if directory is None:
        return fun
    return _lookup(directory, name, fun, static, args, None)[1].call


def _lookup(directory: Path, name: str, fun: Callable, static: tuple, args: tuple,
            options: dict | None) -> tuple[tuple, "_Entry"]:
    """The in-memory key and program entry of ``fun`` at these arguments: from this
    process's table, else read from (or exported to) ``directory``."""
    leaves, tree = jax.tree_util.tree_flatten(args)
    mem_key = (name, static, tree, tuple(_leaf_key(x) for x in leaves),
               bool(jax.config.jax_enable_x64))
    entry = _loaded.get(mem_key)
    if entry is None:
        key = program_key(name, static, args)
        entry = _Entry(_load_or_export(directory / f"{key}.jaxexport", fun, args), fun, options)
        _loaded[mem_key] = entry
    return mem_key, entry


def _leaf_key(x) -> tuple:
    """Shape and dtype of an argument, read off the array (jnp.result_type per leaf cost
    ~20 us, a tenth of a small model's whole fit over its 19 arguments; np.shape and
    str(dtype) another ~2 us each)."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        return (np.shape(x), type(x).__name__)
    return (x.shape, dtype)


class _Entry:
    """One program: the exported one (or ``fun`` itself when exporting failed), plain and
    with its outputs packed into one vector for a single transfer to the host."""

    def __init__(self, exported, fun: Callable, options: dict | None = None) -> None:
        self.exported, self.fun = exported, fun
        self.options = None if exported is None else options
        jit = functools.partial(jax.jit, compiler_options=self.options)
        self.call = fun if exported is None else jit(exported.call)
        self.packed = None
        if exported is not None and jax.config.jax_enable_x64 and all(
            jax.numpy.issubdtype(a.dtype, jax.numpy.number) or a.dtype == bool
            for a in exported.out_avals
        ) and sum(int(np.prod(a.shape)) for a in exported.out_avals) <= PACK_MAX:
            self.packed = jit(lambda *a: _pack(exported.call(*a)))
            # each output's slice of the packed vector, shape and dtype (found once)
            sizes = [int(np.prod(a.shape)) for a in exported.out_avals]
            starts = np.cumsum([0] + sizes).tolist()
            self.parts = [(a, a + k, v.shape, np.dtype(v.dtype))
                          for a, k, v in zip(starts, sizes, exported.out_avals)]

    def __call__(self, args: tuple, to_host: bool):
        if not to_host:
            return self.call(*args)
        if self.packed is None:
            return jax.device_get(self.call(*args))
        flat = np.asarray(self.packed(*args))
        out = [flat[a:b].reshape(shape).astype(dtype) for a, b, shape, dtype in self.parts]
        return jax.tree_util.tree_unflatten(self.exported.out_tree, out)


def _pack(tree) -> jax.Array:
    """Every leaf, raveled, as one float64 vector (integers and booleans exactly)."""
    leaves = jax.tree_util.tree_leaves(tree)
    return jax.numpy.concatenate([jax.numpy.ravel(x).astype(jax.numpy.float64) for x in leaves])


#: Stored programs kept per directory (each edit of jaxmm's source makes new ones).
MAX_FILES = 200


def _prune(directory: Path) -> None:
    """Delete the least recently written programs beyond :data:`MAX_FILES`."""
    files = sorted(directory.glob("*.jaxexport"), key=lambda p: p.stat().st_mtime)
    for old in files[: max(0, len(files) - MAX_FILES)]:
        old.unlink(missing_ok=True)


def _load_or_export(path: Path, fun: Callable, args: tuple):
    """The exported program for ``fun`` at these arguments, read from ``path`` or made and
    written there; None when that fails (the caller then runs ``fun`` itself)."""
    from jax import export

    try:
        _register_pytrees()
        if path.exists():
            return export.deserialize(bytearray(path.read_bytes()))
        path.parent.mkdir(parents=True, exist_ok=True)
        exported = export.export(jax.jit(fun))(*args)
        data = exported.serialize()
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)
        _prune(path.parent)
        return exported
    except Exception:  # noqa: BLE001 - any failure: the plain jit path, same results
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
        return None
