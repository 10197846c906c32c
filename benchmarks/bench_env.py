"""Thread pinning, machine description and package versions for the benchmarks.

Import this module FIRST, before anything imports NumPy: it pins every BLAS/OpenMP/Rayon
thread pool to one thread through environment variables, which the libraries read when they
load. The same variables go to every subprocess (:func:`child_env`), so each contestant
(jaxmm, lme4's recorded runs, statsmodels, mixedlm) runs single-threaded BLAS.
"""

from __future__ import annotations

import os

#: Environment variables that pin the thread pools of BLAS (OpenBLAS, MKL), OpenMP and Rayon
#: (mixedlm's Rust core) to one thread. Set before NumPy is imported.
PINNED = {
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "RAYON_NUM_THREADS": "1",
}
os.environ.update(PINNED)

import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from datetime import date  # noqa: E402
from importlib import metadata  # noqa: E402


def child_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess: ours, the pinned thread counts, and ``extra``.

    A user-configured JAX compilation cache (``JAX_COMPILATION_CACHE_DIR``) and jaxmm's
    opt-out switch are dropped, so the cold runs see exactly the cache directory we give them.
    """
    env = dict(os.environ)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env.pop("JAXMM_NO_COMPILATION_CACHE", None)
    env.update(PINNED)
    env.update(extra)
    return env


def limit_threads():
    """``threadpoolctl.threadpool_limits(1)`` for already-loaded native libraries (kept alive
    by the caller)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def blas_description() -> str:
    """Loaded BLAS/OpenMP libraries and their thread counts, as threadpoolctl sees them."""
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        name = info.get("internal_api", info.get("user_api", "?"))
        parts.append(f"{name} {info.get('version') or ''} ({info['num_threads']} thread(s))")
    return "; ".join(parts) or "none detected"


def thread_note() -> str:
    """One line saying how threads were pinned."""
    env = ", ".join(f"{k}=1" for k in PINNED)
    xla = os.environ.get("XLA_FLAGS", "")
    xla_note = f"XLA_FLAGS={xla!r}" if xla else "XLA's own CPU thread pool left at its default"
    return (
        f"{env} set before NumPy was imported (and passed to every subprocess); "
        f"threadpoolctl.threadpool_limits(1) around every fit; jaxmm also pins BLAS to one "
        f"thread inside its own computations (jaxmm.precision.compute); {xla_note}"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def machine() -> dict[str, str]:
    """nproc, CPU model, memory, OS, Python, and a short slug for file names."""
    nproc = os.cpu_count() or 1
    cpu = _cpu_model()
    mem = _mem_total_gib()
    words = [w for w in "".join(c if c.isalnum() else " " for c in cpu.lower()).split()
             if w not in {"processor", "cpu", "core", "tm", "r"}][:4]
    return {
        "nproc": str(nproc),
        "cpu": cpu,
        "memory": f"{mem:.1f} GiB" if mem else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "slug": f"{nproc}cpu-" + "-".join(words or ["unknown"]),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_rev() -> str:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rev = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "jaxmm"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}{' + uncommitted changes' if dirty else ''}" if rev else "unknown"


def versions() -> dict[str, str]:
    """Versions of every contestant and of the libraries they sit on (no imports needed)."""
    out = {"python": sys.version.split()[0]}
    for dist in ("jax", "jaxlib", "jaxmm", "numpy", "scipy", "pandas",
                 "statsmodels", "mixedlm", "threadpoolctl"):
        out[dist] = _version(dist)
    out["jaxmm git"] = _git_rev()
    return out


def today() -> str:
    return date.today().isoformat()


def time_repeats(fn, repeats: int, budget_s: float, min_repeats: int = 3) -> list[float]:
    """Wall times of up to ``repeats`` calls of ``fn``; stops early once ``budget_s`` seconds
    are spent, but never before ``min_repeats`` calls (nor beyond ``repeats``)."""
    import time

    times: list[float] = []
    while len(times) < repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if sum(times) > budget_s and len(times) >= min(min_repeats, repeats):
            break
    return times
