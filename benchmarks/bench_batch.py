"""Benchmark jaxmm's batched parametric bootstrap against lme4's bootMer (recorded) and
mixedlm's bootMer (run side by side).

Each contestant runs in its own fresh Python process with the same pinned threads
(``bench_env``: one BLAS/OpenMP/Rayon thread, set before NumPy loads; threadpoolctl
limits inside). For jaxmm the child fits the model, then times:

- cold: the first ``fit.bootstrap(nsim)`` call, compilation included (the persistent
  compilation cache is switched off, so this is a real compile);
- warm: further calls (median);
- setup: the host-side part of a warm call (everything but the compiled program);
- peak memory: the child's high-water resident set (VmHWM).

mixedlm's child fits the model and times ``mixedlm.bootMer(model, nsim)`` (first call and
warm median). lme4's figures are the recorded bootMer runs in ``lme4_boot_timings.csv``
(500 REML refits per model; sleep_full also simulate(1000) + refit, and the published
single-threaded OpenBLAS figure, 500 refits in 3.2 s).

Usage:
    python benchmarks/bench_batch.py                       # all three models, mixedlm too
    python benchmarks/bench_batch.py --models sleepstudy --repeats 5 --no-peers
"""

from __future__ import annotations

import bench_env  # noqa: I001  (first: pins BLAS/OpenMP/Rayon threads before NumPy loads)

import argparse
import csv
import os
import sys

from bench_models import MODELS
from bench_subprocess import run_child

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

#: model key -> (replicates, warm target in seconds) from the issue.
CASES = {"sleepstudy": (1000, 0.3), "penicillin": (500, 0.3), "hr2": (500, 0.3)}
COLD_TARGET_S = 2.5
LME4_OPENBLAS_500_SLEEP_S = 3.2

JAXMM_CHILD = """\
import json, statistics, sys, time, warnings
sys.path.insert(0, {root!r})
import bench_env
limits = bench_env.limit_threads()
import jax, jax.numpy as jnp, jaxmm
from jaxmm.precision import compute
from jaxmm.batch.fit import bootstrap_program, start_theta
from jaxmm.batch.simulate import base_key, sim_model
warnings.simplefilter("ignore")
m = jaxmm.lmer({formula!r}, jaxmm.datasets.load({dataset!r}))
t0 = time.perf_counter()
boot = m.bootstrap({nsim}, seed=1, progress=False)
cold = time.perf_counter() - t0
print(json.dumps({{"cold_s": cold, "n_failed": boot.n_failed,
                  "n_singular": int(boot.table["singular"].sum()),
                  "max_iter": int(boot.table["n_iter"].max()),
                  "se": boot.table[list(m.fixef.index)].std(ddof=1).to_dict()}}), flush=True)
warm = []
for i in range({repeats}):
    t0 = time.perf_counter()
    m.bootstrap({nsim}, seed=2 + i, progress=False)
    warm.append(time.perf_counter() - t0)
# the compiled program alone, same arguments as inside bootstrap()
from jaxmm.batch.bootstrap import model_estimate
from jaxmm.batch.table import lane_table
key, _ = base_key(2)
lay = m.devfun.layout
prog, setup = [], []
with compute():
    for i in range({repeats}):
        t0 = time.perf_counter()
        sim, nlev = sim_model(m)
        th0 = jnp.asarray(start_theta(m.theta_vector, lay))
        t1 = time.perf_counter()
        lanes = jax.device_get(bootstrap_program(key, jnp.arange({nsim}), sim, nlev, th0,
                               m.devfun.blocks, lay, m.reml, 300, 1e-7))
        t2 = time.perf_counter()
        lane_table(lanes, m.terms, list(m.design.x_names), m.nobs, m.reml)
        model_estimate(m)
        t3 = time.perf_counter()
        prog.append(t2 - t1)
        setup.append(t1 - t0 + t3 - t2)
hwm = [ln.split()[1] for ln in open("/proc/self/status") if ln.startswith("VmHWM:")]
print(json.dumps({{"warm_s": statistics.median(warm), "warm_min_s": min(warm),
                  "program_s": statistics.median(prog), "program_min_s": min(prog),
                  "setup_s": statistics.median(setup),
                  "peak_rss_mib": int(hwm[0]) / 1024}}), flush=True)
"""

MIXEDLM_CHILD = """\
import json, statistics, sys, time, warnings
sys.path.insert(0, {here!r})
import bench_env
limits = bench_env.limit_threads()
import pandas as pd, mixedlm
warnings.simplefilter("ignore")
df = pd.read_pickle({pickle!r})
r = mixedlm.lmer({formula!r}, df, REML=True)
t0 = time.perf_counter()
b = mixedlm.bootMer(r, nsim={nsim}, seed=1)
first = time.perf_counter() - t0
print(json.dumps({{"first_s": first}}), flush=True)
warm = []
for i in range({repeats}):
    t0 = time.perf_counter()
    mixedlm.bootMer(r, nsim={nsim}, seed=2 + i)
    warm.append(time.perf_counter() - t0)
print(json.dumps({{"warm_s": statistics.median(warm)}}), flush=True)
"""


def lme4_boot() -> dict[str, dict]:
    out: dict[str, dict] = {}
    with open(os.path.join(HERE, "lme4_boot_timings.csv"), newline="") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["model"], {})[row["task"].split(" ")[0]] = row
    return out


def log(msg: str) -> None:
    print(f"[bench_batch] {msg}", file=sys.stderr, flush=True)


def run_jaxmm(key: str, nsim: int, repeats: int, timeout: float) -> dict:
    model = MODELS[key]
    code = JAXMM_CHILD.format(root=ROOT, formula=model.formula, dataset=model.dataset,
                              nsim=nsim, repeats=repeats)
    env = bench_env.child_env(JAXMM_NO_COMPILATION_CACHE="1", PYTHONPATH=f"{ROOT}:{HERE}")
    res = run_child(["-c", code], env, timeout, cwd=HERE)
    if not res.ok:
        return {"status": res.failure()}
    out = {"status": "ok"}
    for rec in res.records:
        out.update(rec)
    return out


def run_mixedlm(key: str, nsim: int, repeats: int, timeout: float, tmpdir: str) -> dict:
    try:
        __import__("importlib.metadata").metadata.version("mixedlm")
    except Exception:
        return {"status": "n/a (not installed)"}
    sys.path.insert(0, ROOT)
    import jaxmm

    model = MODELS[key]
    pickle = os.path.join(tmpdir, f"{key}.pkl")
    jaxmm.datasets.load(model.dataset).to_pickle(pickle)
    code = MIXEDLM_CHILD.format(here=HERE, pickle=pickle, formula=model.formula, nsim=nsim,
                                repeats=repeats)
    res = run_child(["-c", code], bench_env.child_env(), timeout, cwd=HERE)
    out = {"status": "ok" if res.ok else res.failure()}
    for rec in res.records:
        out.update(rec)
    return out


def fmt(x, spec=".3f", missing="–") -> str:
    return missing if x is None else format(x, spec)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=",".join(CASES))
    p.add_argument("--repeats", type=int, default=5, help="warm repeats (median reported)")
    p.add_argument("--no-peers", action="store_true", help="skip mixedlm")
    p.add_argument("--timeout", type=float, default=600.0, help="cap per child process, s")
    a = p.parse_args(argv)
    keys = [k.strip() for k in a.models.split(",") if k.strip()]
    lme4 = lme4_boot()
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            nsim, target = CASES[key]
            log(f"{key}: jaxmm, {nsim} replicates")
            j = run_jaxmm(key, nsim, a.repeats, a.timeout)
            mx = {"status": "skipped"}
            if not a.no_peers:
                log(f"{key}: mixedlm bootMer, {nsim} replicates")
                mx = run_mixedlm(key, nsim, max(1, min(a.repeats, 3)), a.timeout, tmp)
            rows.append((key, nsim, target, j, mx))

    m = bench_env.machine()
    print(f"# jaxmm batched bootstrap benchmark ({bench_env.today()})\n")
    print(f"Machine: {m['cpu']}, {m['nproc']} cores, {m['memory']}; load average at end "
          f"{m['loadavg']}. {bench_env.thread_note()}.\n")
    print("| model | nsim | jaxmm cold s (compile incl.) | warm s (median) | program s (median / min) | "
          "setup s | peak MiB | jaxmm rep/s | lme4 bootMer rep/s | vs lme4 | mixedlm rep/s "
          "| vs mixedlm | targets (warm ≤ %s s, cold ≤ %s s) |" % ("0.3", COLD_TARGET_S))
    print("|" + "---|" * 13)
    for key, nsim, target, j, mx in rows:
        lm = MODELS[key].lme4_id
        rec = lme4.get(lm, {}).get("bootMer")
        lme4_rps = 1000.0 / float(rec["per_refit_ms"]) if rec else None
        if j.get("status") != "ok":
            print(f"| {key} | {nsim} | {j.get('status')} |" + " |" * 11)
            continue
        warm = j["warm_s"]
        rps = nsim / warm
        mx_rps = nsim / mx["warm_s"] if "warm_s" in mx else None
        setup = j["setup_s"]
        ok_warm = "met" if warm <= target else "missed"
        ok_cold = "met" if j["cold_s"] <= COLD_TARGET_S else "missed"
        print(f"| {key} | {nsim} | {fmt(j['cold_s'], '.2f')} | {fmt(warm)} | "
              f"{fmt(j['program_s'])} / {fmt(j['program_min_s'])} | {fmt(setup)} | {fmt(j['peak_rss_mib'], '.0f')} | "
              f"{rps:,.0f} | {fmt(lme4_rps, ',.0f')} | "
              f"{fmt(rps / lme4_rps if lme4_rps else None, '.0f')}x | {fmt(mx_rps, ',.0f')} | "
              f"{fmt(rps / mx_rps if mx_rps else None, '.1f')}x | warm {ok_warm}, cold {ok_cold} |")
    print()
    for key, nsim, target, j, mx in rows:
        if j.get("status") == "ok":
            print(f"- {key}: {j['n_failed']} replicates not converged, {j['n_singular']} "
                  f"singular, max iterations {j['max_iter']}; bootstrap SE(beta) "
                  + ", ".join(f"{k}={v:.4g}" for k, v in j["se"].items()))
        if mx.get("status") not in ("ok", "skipped"):
            print(f"- {key}: mixedlm {mx.get('status')}")
        elif "first_s" in mx:
            print(f"- {key}: mixedlm bootMer first call {mx['first_s']:.2f} s, warm "
                  f"{mx['warm_s']:.2f} s")
    sl = lme4.get("sleep_full", {}).get("simulate(1000)")
    if sl:
        print(f"- lme4 simulate(1000) + refit each, sleep_full: {float(sl['elapsed_s']):.2f} s; "
              f"lme4 with 1-thread OpenBLAS: 500 bootMer refits {LME4_OPENBLAS_500_SLEEP_S} s.")


if __name__ == "__main__":
    main()
