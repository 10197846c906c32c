"""Scoped numerics: one BLAS thread inside jaxmm's computations, for every BLAS library the
factorizations use, whatever was imported before the first fit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import sys
import threadpoolctl
import jaxmm
from jaxmm.precision import compute
assert 'scipy.linalg' not in sys.modules  # imported lazily: the case that went wrong
def blas():
    return [(lib["filepath"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()
            if lib["user_api"] == "blas"]
with threadpoolctl.threadpool_limits(2, user_api="blas"):
    before = blas()
    with compute():
        import scipy.linalg  # noqa: F401  (as jaxlib's LAPACK lowering does)
        inside = blas()
    after = dict(blas())
print(repr((before, inside, [after[path] for path, _ in before])))
"""


def test_every_blas_library_is_pinned_inside_compute():
    """scipy's OpenBLAS (jaxlib's Cholesky and triangular solves) is pinned even when
    scipy.linalg was not imported before the first fit; a lazily imported one had been left
    on its default threads and made InstEval's fit 1.5x slower; settings come back after."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("OPENBLAS_NUM_THREADS", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                         timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    before, inside, after = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 (our repr)
    assert all(n == 1 for _, n in inside), inside
    assert after == [n for _, n in before], (before, after)  # the caller's settings restored
