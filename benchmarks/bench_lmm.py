"""Benchmark jaxmm's ``lmer`` against lme4 (recorded), mixedlm and statsmodels MixedLM.

For each model (all REML) it measures, in this process: setup (``lformula`` + ``mk_devfun``,
warm), compile (first ``jaxmm.lmer`` minus the warm median) and the warm fit time (median of
full ``jaxmm.lmer`` calls); in fresh processes: the cold time of ``python -c "import jaxmm;
... fit ..."`` with an empty persistent compilation cache and again with the cache that run
filled, plus its peak resident memory. It compares the REML criterion with lme4's, the time
with lme4's recorded median, and runs the peers side by side (each in its own process, same
pinned threads, with a time cap). Prints Markdown tables; ``--save`` also writes them to
``benchmarks/results/lmm_<date>_<machine>.md``.

Usage:
    python benchmarks/bench_lmm.py                          # all models, peers, cold runs
    python benchmarks/bench_lmm.py --models sleepstudy,penicillin --repeats 7
    python benchmarks/bench_lmm.py --no-peers --no-cold --save

Peers come from the ``[bench]`` extra: ``pip install -e .[bench]``.
"""

from __future__ import annotations

import bench_env  # noqa: I001  (first: pins BLAS/OpenMP/Rayon threads before NumPy loads)

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # benchmark this checkout's jaxmm
# In-process compile time must be a real compilation, not a persistent-cache load: this
# process caches into a new, empty directory (removed at exit), so its first fit compiles
# and stores the program, and the warm fits run the stored program as a user's do.
import atexit  # noqa: E402
import shutil  # noqa: E402

_CACHE_HOME = tempfile.mkdtemp(prefix="jaxmm_bench_cache_")
atexit.register(shutil.rmtree, _CACHE_HOME, ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
os.environ.pop("JAXMM_NO_COMPILATION_CACHE", None)
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

from bench_models import MODELS, Model, lme4_reference  # noqa: E402
import bench_report  # noqa: E402
from bench_subprocess import cache_entries, cold_jaxmm, ensure_bytecode  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated subset of {', '.join(MODELS)} (default: all)")
    p.add_argument("--repeats", type=int, default=5,
                   help="timed warm fits per model and contestant (default 5; fewer, but at "
                        "least 3, once --budget seconds are spent)")
    p.add_argument("--budget", type=float, default=30.0,
                   help="seconds of warm fits per model and contestant before stopping early")
    p.add_argument("--no-peers", action="store_true", help="skip mixedlm and statsmodels")
    p.add_argument("--no-cold", action="store_true", help="skip the fresh-process runs")
    p.add_argument("--peer-timeout", type=float, default=120.0,
                   help="wall-clock cap per peer process, seconds (default 120)")
    p.add_argument("--cold-timeout", type=float, default=600.0,
                   help="wall-clock cap per cold jaxmm process, seconds (default 600)")
    p.add_argument("--save", action="store_true",
                   help="also write benchmarks/results/lmm_<date>_<machine>.md")
    p.add_argument("--machine", default=None,
                   help="machine name for the results file (default: nproc + CPU model)")
    args = p.parse_args(argv)
    args.model_list = [k.strip() for k in args.models.split(",") if k.strip()]
    unknown = [k for k in args.model_list if k not in MODELS]
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    return args


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def bench_jaxmm(jaxmm, model: Model, df, repeats: int, budget: float) -> dict:
    """In-process timings: first fit, warm fits, setup; criterion and evaluations."""
    import jax

    fit = lambda: jaxmm.lmer(model.formula, df, reml=True)  # noqa: E731

    def setup():
        f = jaxmm.mk_devfun(jaxmm.lformula(model.formula, df), True)
        jax.block_until_ready(f.blocks)

    design = jaxmm.lformula(model.formula, df)
    devfun = jaxmm.mk_devfun(design, True)
    start = jaxmm.moment_start(design.y, design.X, design.terms)
    optimize = lambda: jaxmm.optimize_lmm(devfun, start)  # noqa: E731  (the fit, no setup)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        m = fit()
        first = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = bench_env.time_repeats(fit, repeats, budget)
        setup_t = bench_env.time_repeats(setup, repeats, budget)
        optimize()
        opt_t = bench_env.time_repeats(optimize, repeats, budget)
    warm_s = statistics.median(warm)
    return {
        "nobs": m.nobs,
        "criterion": float(m.objective),
        "n_eval": m.opt.n_eval,
        "first_s": first,
        "warm_s": warm_s,
        "warm_all": warm,
        "n_warm": len(warm),
        "compile_s": first - warm_s,
        "setup_s": statistics.median(setup_t),
        "optimize_s": statistics.median(opt_t),
        "warnings": sorted({f"{w.category.__name__}: {str(w.message)[:120]}" for w in caught}),
    }


def _cold_text(res) -> str:
    return bench_report.fmt_time(res.wall_s) if res.ok else res.failure()


def _cold_detail(res) -> str:
    if not res.ok:
        return res.failure()
    f = bench_report.fmt_time
    return (f"wall {f(res.wall_s)} = interpreter + import jaxmm {f(res.last('import_s'))} "
            f"+ data {f(res.last('load_s'))} + lmer {f(res.last('fit_s'))}; "
            f"peak RSS {bench_report.fmt_mib(res.peak_rss_mib)}")


def bench_cold(model: Model, tmp: str, timeout: float) -> dict:
    """Two fresh processes sharing one new cache directory: empty cache, then filled."""
    cache_home = tempfile.mkdtemp(prefix=f"cache_{model.key}_", dir=tmp)
    env = bench_env.child_env(XDG_CACHE_HOME=cache_home)
    empty = cold_jaxmm(model.dataset, model.formula, env, timeout, cwd=ROOT)
    entries = cache_entries(cache_home)
    cached = cold_jaxmm(model.dataset, model.formula, env, timeout, cwd=ROOT)
    return {
        "empty_txt": _cold_text(empty),
        "cached_txt": _cold_text(cached),
        "peak_rss_mib": empty.peak_rss_mib,
        "peak_rss_cached_mib": cached.peak_rss_mib,
        "empty": _cold_detail(empty),
        "cached": _cold_detail(cached),
        "cache_entries": entries,
        "criterion_empty": empty.last("objective"),
    }


def bench_peers(model: Model, df, tmp: str, args) -> dict:
    from bench_peers import PEERS, run_peer

    pickle_path = os.path.join(tmp, f"{model.key}.pkl")
    df.to_pickle(pickle_path)
    out = {}
    for peer in PEERS:
        log(f"{model.key}: {peer}")
        out[peer] = run_peer(peer, model, pickle_path, args.repeats, args.budget,
                             args.peer_timeout)
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    limits = bench_env.limit_threads()  # noqa: F841 - active for the whole run
    import jax
    import jax.numpy as jnp

    import jaxmm

    meta = {
        "date": bench_env.today(),
        "machine": bench_env.machine(),
        "versions": bench_env.versions(),
        "threads": bench_env.thread_note(),
        "command": "python benchmarks/bench_lmm.py " + " ".join(map(shlex.quote, sys.argv[1:]
                                                                       if argv is None else argv)),
    }
    if args.machine:
        meta["machine"]["slug"] = args.machine
    with jaxmm.x64():  # start the JAX runtime so the first model's compile time excludes it
        jax.block_until_ready(jnp.zeros(1) + 1)
    meta["blas"] = bench_env.blas_description()
    if not args.no_cold:
        meta["bytecode"] = ensure_bytecode(os.path.dirname(jaxmm.__file__))

    rows = []
    with tempfile.TemporaryDirectory(prefix="jaxmm_bench_") as tmp:
        for key in args.model_list:
            model = MODELS[key]
            df = jaxmm.datasets.load(model.dataset)
            row = {"key": key, "model": model, "lme4": lme4_reference(model.lme4_id)}
            log(f"{key}: jaxmm in-process ({args.repeats} warm fits)")
            try:
                row.update(bench_jaxmm(jaxmm, model, df, args.repeats, args.budget))
            except Exception as exc:  # keep going: report the failure in the table
                row["warnings"] = [f"jaxmm failed: {type(exc).__name__}: {exc}"]
            if not args.no_cold:
                log(f"{key}: jaxmm cold processes (empty cache, then cached)")
                row["cold"] = bench_cold(model, tmp, args.cold_timeout)
            if not args.no_peers:
                row["peers"] = bench_peers(model, df, tmp, args)
            rows.append(row)

    text = bench_report.render(meta, rows)
    print(text)
    if args.save:
        out_dir = os.path.join(HERE, "results")
        os.makedirs(out_dir, exist_ok=True)
        stem = os.path.join(out_dir, f"lmm_{meta['date']}_{meta['machine']['slug']}")
        path, k = f"{stem}.md", 2
        while os.path.exists(path):  # a second run the same day keeps the first's table
            path, k = f"{stem}_{k}.md", k + 1
        with open(path, "w") as fh:
            fh.write(text)
        log(f"saved {os.path.relpath(path, ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
