"""Scale benchmark: seeded synthetic designs at 1e5, 1e6, 1e7 rows, one fresh process each.

Designs (seed fixed, so every run fits the same data):

* ``crossed``: ``y ~ x + (1|g) + (1|h)``, g with 100,000 levels, h with 1,000 levels.
  Each g level is partially crossed with h: it draws its rows from ``--per-g`` (default 5)
  h levels of its own (people seen at a few of 1,000 sites). ``--per-g 0`` crosses g and h
  at random (each g level meets ~n/1e5 distinct h levels): jaxmm's sparse Schur update then
  needs ~(n/1e5)^2/2 pairs per g level and refuses above its pair budget (see
  ``jaxmm.design.schur.MAX_PAIRS``), saying how many it would need.
* ``random``: the same formula and sizes with g and h crossed completely at random (each g
  level's ~n/1e5 rows hit ~n/1e5 distinct h levels; the data of ``crossed --per-g 0``).
  The element pairs then number ~(n/1e5)^2/2 per g level (~460 M at 1e7 rows), and jaxmm
  takes its class update instead (g levels with equal counts share one dense matrix, see
  ``jaxmm.design.classes``); the table says which update each fit used.
* ``slope``: ``y ~ x + (x|g)`` with 1e6 rows and 100,000 levels.

Each size runs in its own subprocess (peak memory = that process's VmHWM). Printed per
size: data generation (not counted), setup (design + crossproducts + start), fit
(optimizer + estimates), total (setup + fit), peak RSS; then the log-log slope of setup
and total time (and of memory) against rows.

Usage::

    python benchmarks/scale.py                 # 1e5, 1e6, 1e7 crossed + the (x|g) case
    python benchmarks/scale.py --design random --no-slope   # fully random crossing
    python benchmarks/scale.py --sizes 1e5 1e6 --no-slope
    python benchmarks/scale.py --child crossed 1e6   # one size, JSON on stdout
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def make_data(design: str, n: int, per_g: int = 5, seed: int = 20261125):
    """The seeded synthetic frame (int grouping columns, as users usually have them)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ng, nh = 100_000, 1_000
    g = rng.integers(0, ng, n)
    x = rng.standard_normal(n)
    if design == "slope":
        b0 = rng.standard_normal(ng) * 0.8
        b1 = rng.standard_normal(ng) * 0.3
        y = 1.0 + 0.5 * x + b0[g] + b1[g] * x + rng.standard_normal(n)
        return pd.DataFrame({"y": y, "x": x, "g": g})
    if design == "random":
        per_g = 0
    if per_g > 0:
        homes = rng.integers(0, nh, (ng, per_g))
        h = homes[g, rng.integers(0, per_g, n)]
    else:
        h = rng.integers(0, nh, n)
    y = (1.0 + 0.5 * x + rng.standard_normal(ng)[g] * 0.7 + rng.standard_normal(nh)[h] * 0.4
         + rng.standard_normal(n))
    return pd.DataFrame({"y": y, "x": x, "g": g, "h": h})


FORMULAS = {"crossed": "y ~ x + (1|g) + (1|h)", "random": "y ~ x + (1|g) + (1|h)",
            "slope": "y ~ x + (x|g)"}


def peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def child(design: str, n: int, per_g: int) -> None:
    sys.path.insert(0, os.path.dirname(HERE))
    t0 = time.perf_counter()
    data = make_data(design, n, per_g)
    t_data = time.perf_counter() - t0
    rss_data = peak_rss_mib()
    import jaxmm
    from jaxmm.optimize.lmm import run_fit
    from jaxmm.optimize.start import moment_start
    from jaxmm.precision import enable_compilation_cache

    enable_compilation_cache()
    rec = {"design": design, "n": n, "data_s": t_data, "data_rss_mib": rss_data}
    try:
        t1 = time.perf_counter()
        d = jaxmm.lformula(FORMULAS[design], data)
        rec["design_s"] = time.perf_counter() - t1
        f = jaxmm.mk_devfun(d, reml=True)
        start = moment_start(d.y, d.X, d.terms)
        t2 = time.perf_counter()
        rec["setup_s"] = t2 - t1
        rec["update"] = "classes" if f.blocks.cls_j.shape[0] else "pairs"
        res, opt = run_fit(f, start)
        m = jaxmm.LinearMixedModel(d, f, opt, estimates=res.estimates)
        crit = m.reml_criterion
        t3 = time.perf_counter()
        rec.update(fit_s=t3 - t2, total_s=t3 - t1, reml=float(crit),
                   theta=[float(v) for v in m.theta], nfev=int(getattr(opt, "nfev", -1) or -1))
    except jaxmm.errors.JaxmmError as e:
        rec["error"] = f"{type(e).__name__}: {e}"
    rec["peak_rss_mib"] = peak_rss_mib()
    print(json.dumps(rec), flush=True)


def run_child(design: str, n: int, per_g: int) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", design, str(n),
           "--per-g", str(per_g)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"design": design, "n": n, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(lines[-1])


def slope(xs, ys) -> float:
    lx = [math.log(x) for x in xs]
    ly = [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def fmt(rec: dict) -> str:
    if "error" in rec:
        return f"| {rec['design']} | {rec['n']:.0e} | refused/failed: {rec['error']} |"
    return (f"| {rec['design']} ({rec.get('update', '?')}) | {rec['n']:.0e} | {rec['data_s']:.1f} | "
            f"{rec['setup_s']:.1f} | "
            f"{rec['fit_s']:.1f} | {rec['total_s']:.1f} | {rec['peak_rss_mib'] / 1024:.2f} | "
            f"{rec['reml']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", nargs="*", default=["1e5", "1e6", "1e7"])
    ap.add_argument("--per-g", type=int, default=5)
    ap.add_argument("--design", default="crossed", choices=["crossed", "random"])
    ap.add_argument("--no-slope", action="store_true")
    ap.add_argument("--child", nargs=2, metavar=("DESIGN", "N"))
    a = ap.parse_args()
    if a.child:
        child(a.child[0], int(float(a.child[1])), a.per_g)
        return
    print("| design | rows | data s | setup s | fit s | total s | peak GiB | REML crit |")
    print("|---|---|---|---|---|---|---|---|")
    recs = []
    for s in a.sizes:
        rec = run_child(a.design, int(float(s)), a.per_g)
        recs.append(rec)
        print(fmt(rec), flush=True)
    if not a.no_slope:
        print(fmt(run_child("slope", 1_000_000, a.per_g)), flush=True)
    ok = [r for r in recs if "error" not in r]
    if len(ok) >= 2:
        ns = [r["n"] for r in ok]
        print(f"\ngrowth exponent (log-log slope vs rows): setup {slope(ns, [r['setup_s'] for r in ok]):.2f}, "
              f"total {slope(ns, [r['total_s'] for r in ok]):.2f}, "
              f"peak memory {slope(ns, [r['peak_rss_mib'] for r in ok]):.2f}")


if __name__ == "__main__":
    main()
