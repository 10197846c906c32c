"""GLMM benchmark: jaxmm.glmer vs lme4's recorded glmer times and mixedlm's glmer.

Run: ``python benchmarks/bench_glmm.py``. Prints, per model: cold (first fit in this process,
compilation included, persistent compilation cache disabled), warm (median of 5 full fits
from the DataFrame), setup (glformula: design on the host), peak RSS, -2 logLik vs lme4,
and the ratios to lme4 (benchmarks/lme4_timings.csv, R 4.2.2 reference BLAS) and to mixedlm
1.3 (run here, same pinned single-threaded BLAS; in its own subprocess).
"""

from __future__ import annotations

import os

os.environ["JAXMM_NO_COMPILATION_CACHE"] = "1"
import bench_env  # noqa: E402,F401  (pins BLAS threads before NumPy loads)

import csv  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = [  # (id, dataset, formula, family, nagq)
    ("cbpp_glmm", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 1),
    ("cbpp_glmm_agq25", "cbpp", "cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", 25),
    ("grouse_glmm", "grouseticks", "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", 1),
    ("verbagg_glmm", "VerbAgg", "r2 ~ (Anger + Gender + btype + situ) + (1 | id) + (1 | item)", "binomial", 1),
]


def lme4_times() -> dict[str, float]:
    with open(os.path.join(HERE, "lme4_timings.csv")) as fh:
        return {r["model"]: float(r["median_s"]) for r in csv.DictReader(fh)}


def mixedlm_child(dataset: str, formula: str, family: str, nagq: int) -> None:
    import jaxmm
    import mixedlm

    df = jaxmm.datasets.load(dataset)
    kw = {}
    if dataset == "VerbAgg":
        df = df.assign(r2=(df["r2"] == "Y").astype(float))
    if formula.startswith("cbind("):  # mixedlm has no cbind(): proportion + weights (same fit)
        df = df.assign(prop=df["incidence"] / df["size"], size=df["size"].astype(float))
        formula, kw = "prop ~ " + formula.split("~", 1)[1], {"weights": "size"}
    if "scale(HEIGHT)" in formula:
        h = df["HEIGHT"].astype(float)
        df = df.assign(sHEIGHT=(h - h.mean()) / h.std())
        formula = formula.replace("scale(HEIGHT)", "sHEIGHT")
    fam = getattr(mixedlm.families, family.capitalize())()
    fit = lambda: mixedlm.glmer(formula, df, family=fam, nAGQ=nagq, **kw)  # noqa: E731
    t = time.perf_counter()
    fit()
    cold = time.perf_counter() - t
    ts = []
    for _ in range(5):
        t = time.perf_counter()
        fit()
        ts.append(time.perf_counter() - t)
    print(json.dumps({"cold": cold, "warm": statistics.median(ts)}))


def mixedlm_time(dataset, formula, family, nagq):
    try:
        out = subprocess.run([sys.executable, __file__, "--mixedlm", dataset, formula, family, str(nagq)],
                             capture_output=True, text=True, timeout=300, env=bench_env.child_env())
        return json.loads(out.stdout.strip().splitlines()[-1])["warm"]
    except Exception:
        return None


def main() -> None:
    import jaxmm
    from jaxmm.glmm_pipeline import glformula

    ref = lme4_times()
    rows = []
    for mid, ds, formula, fam, nagq in MODELS:
        df = jaxmm.datasets.load(ds)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            g = jaxmm.glmer(formula, df, family=fam, nagq=nagq)
            cold = time.perf_counter() - t
            ts = []
            for _ in range(5):
                t = time.perf_counter()
                g = jaxmm.glmer(formula, df, family=fam, nagq=nagq)
                ts.append(time.perf_counter() - t)
            t = time.perf_counter()
            glformula(formula, df, fam)
            setup = time.perf_counter() - t
        warm = statistics.median(ts)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        crit = json.load(open(os.path.join(HERE, "..", "tests", "fixtures", "lme4", f"{mid}.json")))["minus2logLik"]
        mx = mixedlm_time(ds, formula, fam, nagq)
        rows.append((mid, cold, warm, setup, peak, g.objective - crit, ref.get(mid), mx, g.opt.n_eval))
    print(f"{'model':18} {'cold s':>7} {'warm s':>8} {'setup s':>8} {'peakMiB':>8} {'d(-2ll)':>9} "
          f"{'lme4 s':>7} {'lme4/us':>7} {'mixedlm s':>9} {'mx/us':>6} {'evals':>5}")
    for mid, cold, warm, setup, peak, d, l4, mx, ne in rows:
        mxs = f"{mx:9.3f} {mx / warm:6.1f}" if mx else f"{'n/a':>9} {'':>6}"
        print(f"{mid:18} {cold:7.2f} {warm:8.4f} {setup:8.4f} {peak:8.0f} {d:9.1e} {l4:7.3f} "
              f"{l4 / warm:7.1f} {mxs} {ne:5d}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--mixedlm":
        mixedlm_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    else:
        main()
