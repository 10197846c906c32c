"""Peer packages fitting the same models: statsmodels MixedLM and mixedlm (Rust core).

Each peer runs in its own fresh Python process (``python bench_peers.py PEER MODEL ...``),
with the same pinned thread environment as jaxmm, under a wall-clock cap. The worker reads
the exact DataFrame jaxmm fits (pickled by the parent, so no JAX is loaded in the worker and
its peak memory is the peer's own), fits once (first call: imports, lazy initialisation),
then times repeated full fits from the DataFrame and prints one JSON line per fit, so a run
cut off by the cap still reports what it finished.

APIs used:
  mixedlm:      ``mixedlm.lmer(formula, df, REML=True, **kw)``; criterion ``r.REMLcrit()``,
                evaluations ``r.function_evals``, ``r.converged``.
  statsmodels:  ``smf.mixedlm(formula, df, groups=..., re_formula=..., vc_formula=...)
                .fit(reml=True)``; criterion ``-2 * r.llf`` (the REML log-likelihood, which
                matches lme4's REMLcrit), ``r.converged``.
"""

from __future__ import annotations

import bench_env  # noqa: F401  (pins threads before NumPy loads)

import json
import os
import statistics
import sys
import time
import warnings

from bench_models import MODELS, Model
from bench_subprocess import peak_rss_mib, run_child

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = ("mixedlm", "statsmodels")


# ---------------------------------------------------------------- worker (child process)

def _fitter(peer: str, model: Model, df):
    """A zero-argument function doing one full fit, returning (criterion, converged, n_eval)."""
    if peer == "mixedlm":
        import mixedlm

        def fit():
            r = mixedlm.lmer(model.formula, df, REML=True, **model.mixedlm_kwargs)
            return float(r.REMLcrit()), bool(r.converged), int(r.function_evals)

        return fit
    if peer == "statsmodels":
        import statsmodels.formula.api as smf

        spec = dict(model.statsmodels)
        groups = spec.pop("groups")
        if groups is None:  # crossed factors: one all-ones group, factors as components
            df = df.assign(_one=1)
            groups = "_one"
        formula = spec.pop("formula")

        def fit():
            r = smf.mixedlm(formula, df, groups=groups, **spec).fit(reml=True)
            return float(-2 * r.llf), bool(r.converged), None

        return fit
    raise ValueError(f"unknown peer {peer!r}")


def worker(peer: str, key: str, data_pickle: str, repeats: int, budget_s: float) -> None:
    import pandas as pd

    limits = bench_env.limit_threads()  # noqa: F841 - kept alive for the whole run
    df = pd.read_pickle(data_pickle)
    fit = _fitter(peer, MODELS[key], df)

    def emit(**rec):
        print(json.dumps(rec), flush=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        crit, conv, n_eval = fit()
        emit(event="first", time_s=time.perf_counter() - t0, criterion=crit,
             converged=conv, n_eval=n_eval)
    msgs = sorted({f"{w.category.__name__}: {(str(w.message).splitlines() or [''])[0][:100]}"
                   for w in caught})
    if msgs:
        emit(warnings=msgs)
    spent = 0.0
    for i in range(repeats):  # same stopping rule as bench_env.time_repeats
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fit()
        dt = time.perf_counter() - t0
        spent += dt
        emit(event="warm", time_s=dt)
        if spent > budget_s and i + 1 >= min(3, repeats):
            break
    emit(peak_rss_mib=peak_rss_mib())


# ---------------------------------------------------------------- launcher (parent)

def run_peer(peer: str, model: Model, data_pickle: str, repeats: int, budget_s: float,
             timeout_s: float) -> dict:
    """Fit ``model`` with ``peer`` in a fresh process; a summary dict with ``status``."""
    if peer == "statsmodels" and model.statsmodels is None:
        return {"status": f"n/a ({model.statsmodels_reason})", "short": "n/a"}
    try:
        __import__("importlib.metadata").metadata.version(peer)
    except Exception:
        return {"status": "n/a (not installed)", "short": "n/a"}
    res = run_child(
        [os.path.join(HERE, "bench_peers.py"), peer, model.key, data_pickle, str(repeats),
         str(budget_s)],
        env=bench_env.child_env(), timeout=timeout_s, cwd=HERE,
    )
    first = [r for r in res.records if r.get("event") == "first"]
    warm = [r["time_s"] for r in res.records if r.get("event") == "warm"]
    out = {
        "peak_rss_mib": res.peak_rss_mib,
        "wall_s": res.wall_s,
        "warnings": res.last("warnings", []),
    }
    if first:
        out.update(first_s=first[0]["time_s"], criterion=first[0]["criterion"],
                   converged=first[0]["converged"], n_eval=first[0]["n_eval"])
    if warm:
        out.update(warm_s=statistics.median(warm), n_warm=len(warm))
    if res.ok:
        out.update(status="ok", short="ok")
    elif res.timed_out:
        done = f", {len(warm)} warm fit(s) done" if first else ", no fit finished"
        out.update(status=f"timeout ({timeout_s:g} s cap{done})", short="timeout")
    else:
        out.update(status=res.failure(), short="failed")
    return out


if __name__ == "__main__":
    worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
