"""Time jaxmm on whatever JAX backend is present (written for a GPU; runs on a CPU too).

Prints Markdown to stdout as it goes (progress and tracebacks to stderr), one table per part:
in-process fits of the ``bench_models`` models (setup, first ``lmer`` with compilation, warm
``lmer`` median, evaluations, REML criterion against lme4's; ``dtype="float32"`` first and
warm for ``--f32-models``); cold fits in fresh processes (empty persistent cache, then the
cache that run filled); batched parametric bootstraps (``--boot model:nsim``: first call with
compilation, warm median); large synthetic fits (``scale.py --child crossed N``, one fresh
process per size, empty cache, so *fit* includes compilation). Each part is guarded: a
failure prints its error and the run goes on. GPU memory is not preallocated
(``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless set), so child processes find the device
free. Threads are pinned as in ``bench_lmm.py`` (``bench_env``).

Usage:
    JAX_PLATFORMS=cuda python benchmarks/bench_gpu.py            # everything
    python benchmarks/bench_gpu.py --models sleepstudy,penicillin --quick
    python benchmarks/bench_gpu.py --no-cold --no-scale --boot penicillin:1000
"""

from __future__ import annotations

import bench_env  # noqa: I001  (first: pins BLAS/OpenMP/Rayon threads before NumPy loads)

import argparse
import atexit
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from importlib import metadata
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # benchmark this checkout's jaxmm
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
_CACHE_HOME = tempfile.mkdtemp(prefix="jaxmm_gpu_cache_")  # first fits compile for real
atexit.register(shutil.rmtree, _CACHE_HOME, ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
os.environ.pop("JAXMM_NO_COMPILATION_CACHE", None)
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

from bench_models import MODELS, lme4_reference  # noqa: E402
from bench_report import fmt_diff, fmt_mib, fmt_time  # noqa: E402
from bench_subprocess import cache_entries, cold_jaxmm, run_child  # noqa: E402


def out(text: str = "") -> None:
    print(text, flush=True)


def log(msg: str) -> None:
    print(f"[bench_gpu] {msg}", file=sys.stderr, flush=True)


def guarded(label: str, fn: Callable[[], Any]) -> Any:
    """``fn()``, or the failure as a short string (traceback to stderr)."""
    try:
        return fn()
    except Exception as exc:  # keep going: one failure must not cost the rest of the run
        traceback.print_exc(file=sys.stderr)
        log(f"{label} failed")
        return f"failed: {type(exc).__name__}: {str(exc)[:160]}"


def row(cells: list[str]) -> None:
    out("| " + " | ".join(cells) + " |")


def head(cells: list[str]) -> None:
    row(cells)
    out("|" + "---|" * len(cells))


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def environment(jax) -> list[str]:
    """Markdown bullet lines: machine, JAX backend and devices, versions, settings."""
    mach = bench_env.machine()
    devs = jax.devices()
    lines = [
        f"- **Host**: {mach['nproc']} CPUs ({mach['cpu']}), {mach['memory']} RAM, "
        f"{mach['os']}, python {mach['python']}",
        f"- **JAX backend**: `{jax.default_backend()}`; devices: "
        + ", ".join(f"{d.platform}:{d.id} {d.device_kind}" for d in devs),
    ]
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                              "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20)
        if smi.returncode == 0 and smi.stdout.strip():
            lines.append(f"- **nvidia-smi**: {smi.stdout.strip()}")
    except (OSError, subprocess.SubprocessError):
        pass
    vers = {d: _version(d) for d in ("jax", "jaxlib", "jax-cuda13-plugin", "jax-cuda12-plugin",
                                     "numpy", "scipy", "pandas")}
    # a copy without .git (e.g. shipped to another machine) names its commit in JAXMM_BENCH_REV
    vers["jaxmm git"] = os.environ.get("JAXMM_BENCH_REV") or bench_env.versions()["jaxmm git"]
    lines.append("- **Versions**: " + ", ".join(f"{k} {v}" for k, v in vers.items() if v))
    keys = ("JAX_PLATFORMS", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_FLAGS")
    lines.append("- **Environment**: " + ", ".join(f"{k}={os.environ.get(k, '')!r}"
                                                   for k in keys))
    lines.append(f"- **Threads**: {bench_env.thread_note()}")
    return lines


def fit_timings(jaxmm, key: str, df, repeats: int, budget: float, f32: bool) -> dict:
    """First and warm ``lmer`` (float64; float32 too when ``f32``), setup, criterion."""
    import jax

    formula = MODELS[key].formula

    def setup() -> None:
        jax.block_until_ready(jaxmm.mk_devfun(jaxmm.lformula(formula, df), True).blocks)

    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    m = jaxmm.lmer(formula, df, reml=True)
    res["first_s"] = time.perf_counter() - t0
    warm = bench_env.time_repeats(lambda: jaxmm.lmer(formula, df, reml=True), repeats, budget)
    res.update(warm_s=statistics.median(warm), n_warm=len(warm), nobs=m.nobs,
               crit=float(m.objective), n_eval=m.opt.n_eval,
               setup_s=statistics.median(bench_env.time_repeats(setup, repeats, budget)))
    if f32:
        fit32 = lambda: jaxmm.lmer(formula, df, reml=True, dtype="float32")  # noqa: E731
        t0 = time.perf_counter()
        m32 = fit32()
        res["f32_first_s"] = time.perf_counter() - t0
        res["f32_warm_s"] = statistics.median(bench_env.time_repeats(fit32, repeats, budget))
        res["f32_crit"] = float(m32.objective)
    return res


def part_fits(jaxmm, args) -> None:
    out("## In-process fits (REML)\n")
    head(["model", "nobs", "setup", "first fit (compile incl.)", "warm fit", "evals",
          "REMLcrit", "- lme4", "f32 first", "f32 warm", "f32 REMLcrit - f64"])
    for key in args.model_list:
        log(f"{key}: in-process fits")
        df = jaxmm.datasets.load(MODELS[key].dataset)
        r = guarded(key, lambda: fit_timings(jaxmm, key, df, args.repeats, args.budget,
                                             key in args.f32_list))
        if isinstance(r, str):
            row([key, r] + [""] * 9)
            continue
        ref = lme4_reference(MODELS[key].lme4_id)["criterion"]
        f32 = ("f32_crit" in r)
        row([key, str(r["nobs"]), fmt_time(r["setup_s"]), fmt_time(r["first_s"]),
             f"{fmt_time(r['warm_s'])} (n={r['n_warm']})", str(r["n_eval"]),
             f"{r['crit']:.6f}", fmt_diff(r["crit"], ref),
             fmt_time(r["f32_first_s"]) if f32 else "–",
             fmt_time(r["f32_warm_s"]) if f32 else "–",
             fmt_diff(r["f32_crit"], r["crit"]) if f32 else "–"])
    out()


def part_cold(args, tmp: str) -> None:
    out("## Cold fits in fresh processes (import + data + compile or cache load + fit)\n")
    head(["model", "empty cache: wall", "of which lmer", "cached: wall", "of which lmer",
          "import jaxmm", "cache files", "peak RSS (empty)", "REMLcrit"])
    for key in args.cold_list:
        model = MODELS[key]
        log(f"{key}: cold processes")

        def run() -> list[str]:
            env = bench_env.child_env(XDG_CACHE_HOME=tempfile.mkdtemp(prefix=key, dir=tmp))
            empty = cold_jaxmm(model.dataset, model.formula, env, args.child_timeout, cwd=ROOT)
            files = cache_entries(env["XDG_CACHE_HOME"])
            cached = cold_jaxmm(model.dataset, model.formula, env, args.child_timeout, cwd=ROOT)
            for res in (empty, cached):
                if not res.ok:
                    log(f"{key} cold child stderr:\n{res.stderr_tail[-1500:]}")
            wall = lambda r: fmt_time(r.wall_s) if r.ok else r.failure()  # noqa: E731
            crit = empty.last("objective")
            return [key, wall(empty), fmt_time(empty.last("fit_s")), wall(cached),
                    fmt_time(cached.last("fit_s")), fmt_time(empty.last("import_s")),
                    str(files), fmt_mib(empty.peak_rss_mib),
                    f"{crit:.6f}" if crit is not None else "–"]

        r = guarded(f"{key} cold", run)
        row(r if isinstance(r, list) else [key, r] + [""] * 7)
    out()


def part_boot(jaxmm, args) -> None:
    out("## Batched parametric bootstrap (`m.bootstrap(nsim)`, REML refits)\n")
    head(["model", "nsim", "first call (compile incl.)", "warm", "replicates/s",
          "not converged", "singular", "SE(beta) of first column"])
    for spec in args.boot_list:
        key, nsim = spec
        log(f"{key}: bootstrap {nsim}")

        def run() -> list[str]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = jaxmm.lmer(MODELS[key].formula, jaxmm.datasets.load(MODELS[key].dataset))
                t0 = time.perf_counter()
                b = m.bootstrap(nsim, seed=1, progress=False)
                first = time.perf_counter() - t0
                seeds = iter(range(2, 100))
                warm = bench_env.time_repeats(
                    lambda: m.bootstrap(nsim, seed=next(seeds), progress=False),
                    args.boot_repeats, args.budget, min_repeats=2)
            w = statistics.median(warm)
            col = list(m.fixef.index)[0]
            return [key, str(nsim), fmt_time(first), f"{fmt_time(w)} (n={len(warm)})",
                    f"{nsim / w:,.0f}", str(b.n_failed), str(int(b.table["singular"].sum())),
                    f"{col}={b.table[col].std(ddof=1):.4g}"]

        r = guarded(f"{key} bootstrap", run)
        row(r if isinstance(r, list) else [key, str(nsim), r] + [""] * 5)
    out()


def part_scale(args, tmp: str) -> None:
    out("## Large synthetic fits (`scale.py --child crossed N`, fresh process, empty cache)\n")
    head(["design", "rows", "update", "data", "setup", "fit (compile incl.)", "total",
          "peak RSS", "REMLcrit", "wall"])
    for n in args.scale_list:
        log(f"scale crossed {n:.0e}")

        def run() -> list[str]:
            env = bench_env.child_env(XDG_CACHE_HOME=tempfile.mkdtemp(prefix="scale", dir=tmp),
                                      PYTHONPATH=ROOT)
            res = run_child([os.path.join(HERE, "scale.py"), "--child", "crossed", str(n)],
                            env, args.child_timeout, cwd=ROOT)
            rec = res.records[-1] if res.records else {}
            if not res.ok or not rec:
                log(f"scale {n} stderr:\n{res.stderr_tail[-1500:]}")
                return ["crossed", f"{n:.0e}", res.failure()] + [""] * 6 + [fmt_time(res.wall_s)]
            if "error" in rec:
                return ["crossed", f"{n:.0e}", rec["error"][:160]] + [""] * 6 + [
                    fmt_time(res.wall_s)]
            return ["crossed", f"{n:.0e}", rec.get("update", "?"), fmt_time(rec["data_s"]),
                    fmt_time(rec["setup_s"]), fmt_time(rec["fit_s"]), fmt_time(rec["total_s"]),
                    fmt_mib(rec["peak_rss_mib"]), f"{rec['reml']:.4f}", fmt_time(res.wall_s)]

        r = guarded(f"scale {n}", run)
        row(r if isinstance(r, list) else ["crossed", f"{n:.0e}", r] + [""] * 7)
    out()


def _keys(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in MODELS]
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    return keys


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="in-process models (default all)")
    p.add_argument("--f32-models", default="star,insteval",
                   help="models also fitted with dtype='float32' (default star,insteval)")
    p.add_argument("--cold-models", default="star,insteval",
                   help="models fitted in fresh processes (default star,insteval)")
    p.add_argument("--boot", default="sleepstudy:1000,penicillin:1000",
                   help="bootstrap workloads, model:nsim,...")
    p.add_argument("--scale", default="1e6,1e7", help="synthetic crossed sizes (default 1e6,1e7)")
    p.add_argument("--repeats", type=int, default=5, help="warm fits per model (median)")
    p.add_argument("--boot-repeats", type=int, default=3, help="warm bootstrap calls")
    p.add_argument("--budget", type=float, default=20.0,
                   help="seconds of warm repeats per item before stopping early (min 3)")
    p.add_argument("--child-timeout", type=float, default=180.0, help="cap per child process, s")
    p.add_argument("--quick", action="store_true",
                   help="3 repeats, 5 s budget, 2 warm bootstraps, scale 1e5 only")
    for part in ("cold", "boot", "scale"):
        p.add_argument(f"--no-{part}", action="store_true", help=f"skip the {part} part")
    a = p.parse_args(argv)
    if a.quick:
        a.repeats, a.budget, a.boot_repeats = min(a.repeats, 3), 5.0, 2
        if a.scale == "1e6,1e7":
            a.scale = "1e5"
    a.model_list, a.f32_list, a.cold_list = (_keys(a.models), _keys(a.f32_models),
                                             _keys(a.cold_models))
    a.boot_list = [] if a.no_boot else [(k, int(n)) for k, n in
                                        (s.split(":") for s in a.boot.split(",") if s)]
    _keys(",".join(k for k, _ in a.boot_list))
    a.scale_list = [] if a.no_scale else [int(float(s)) for s in a.scale.split(",") if s]
    if a.no_cold:
        a.cold_list = []
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    limits = bench_env.limit_threads()  # noqa: F841 - active for the whole run
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    import jax
    import jax.numpy as jnp

    import jaxmm

    with jaxmm.x64():  # start the runtime so the first model's compile time excludes it
        jax.block_until_ready(jnp.zeros(1) + 1)
    t_runtime = time.perf_counter() - t0
    log(f"jaxmm from {jaxmm.__file__}; devices {jax.devices()}")
    out(f"# jaxmm on `{jax.default_backend()}` ({jax.devices()[0].device_kind}), "
        f"{bench_env.today()}\n")
    for line in environment(jax):
        out(line)
    out(f"- **Import + runtime start**: {fmt_time(t_runtime)} (jax, jaxmm, first device op)")
    out("- **Command**: `python benchmarks/bench_gpu.py " + " ".join(sys.argv[1:]) + "`\n")
    part_fits(jaxmm, args)
    with tempfile.TemporaryDirectory(prefix="jaxmm_gpu_bench_") as tmp:
        if args.boot_list:
            part_boot(jaxmm, args)
        if args.cold_list:
            part_cold(args, tmp)
        if args.scale_list:
            part_scale(args, tmp)
    out(f"Total wall time of the benchmark: {fmt_time(time.perf_counter() - t_start)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
