"""Benchmark jaxmm's inference against lmerTest/pbkrtest/lme4 (recorded) and mixedlm.

Tasks, each timed cold (first call in this process, compiling; persistent compilation
cache off) and warm (median of repeats on a fresh fit object, so no cached result is
reused; the fit itself is not timed):

- ``satt``: Satterthwaite coefficient table + type III anova (lmerTest's ``summary`` and
  ``anova``). Recorded: lmerTest on InstEval ~14 s (issue text). mixedlm:
  ``satterthwaite_df`` (df only, no anova).
- ``kr``: Kenward-Roger coefficient table + type III anova (pbkrtest via lmerTest).
  mixedlm: ``kenward_roger_df``.
- ``profile``: ``confint(method="profile")`` for all parameters. Recorded: lme4 1.35 s on
  sleepstudy (issue text). mixedlm's profile interval covers the fixed effects only.
- ``lrt``: ``anova(hr1, hr3, hr2)`` incl. the ML refits. mixedlm: ``mixedlm.anova``.

Threads: ``bench_env`` pins OpenBLAS/MKL/OpenMP/Rayon to 1 thread before NumPy loads, for
jaxmm and mixedlm alike (both run in this process).

Usage:
    python benchmarks/bench_inference.py [--repeats 5] [--tasks satt,kr,profile,lrt] [--save]
"""

from __future__ import annotations

import bench_env  # noqa: I001  (first: pins BLAS threads)

import argparse
import os
import statistics
import sys
import time
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
os.environ["JAXMM_NO_COMPILATION_CACHE"] = "1"
os.environ.pop("JAX_COMPILATION_CACHE_DIR", None)

import bench_report  # noqa: E402

HR = {
    "hr1": "HR ~ baseHR + Time * Drug + (1 | Patient)",
    "hr3": "HR ~ baseHR + Time * Drug + (1 | Patient) + (Time - 1 | Patient)",
    "hr2": "HR ~ baseHR + Time * Drug + (Time | Patient)",
}
CASES = {
    "satt": [("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days|Subject)", None),
             ("hr2", "HR", HR["hr2"], None),
             ("star", "star", "math ~ gr + sx + eth + cltype + (yrs | id) + (yrs | sch)", None),
             ("insteval", "InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", 14.0)],
    "kr": [("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days|Subject)", None),
           ("hr2", "HR", HR["hr2"], None),
           ("penicillin", "Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", None)],
    "profile": [("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days|Subject)", 1.35),
                ("penicillin", "Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", None)],
    "lrt": [("hr", "HR", None, None)],
}


def jaxmm_task(jaxmm, task: str, df, formula: str | None):
    """(prepare, run): prepare fits (untimed); run performs the inference on it."""
    if task == "lrt":
        def prepare():
            return {k: jaxmm.lmer(f, df) for k, f in HR.items()}
        return prepare, lambda ms: jaxmm.anova(**ms)
    prepare = lambda: jaxmm.lmer(formula, df)  # noqa: E731
    if task == "satt":
        return prepare, lambda m: (m.coef_table(), m.anova())
    if task == "kr":
        return prepare, lambda m: (m.coef_table("Kenward-Roger"), m.anova(ddf="Kenward-Roger"))
    return prepare, lambda m: m.confint(method="profile")


def mixedlm_task(task: str, df, formula: str | None):
    try:
        import mixedlm
    except ImportError:
        return None
    if task == "lrt":
        def prepare():
            return [mixedlm.lmer(f, df, REML=True) for f in HR.values()]
        return prepare, lambda ms: mixedlm.anova(*ms)
    kw = {"contrasts": {"gr": "poly"}} if "gr +" in (formula or "") else {}
    prepare = lambda: mixedlm.lmer(formula, df, REML=True, **kw)  # noqa: E731
    if task == "satt":
        return prepare, lambda m: mixedlm.satterthwaite_df(m)
    if task == "kr":
        return prepare, lambda m: mixedlm.kenward_roger_df(m)
    return prepare, lambda m: m.confint(method="profile")


def timed(prepare, run, repeats: int) -> tuple[float, float]:
    """(first call, median of the following ``repeats``), each on a freshly prepared object."""
    obj = prepare()
    t0 = time.perf_counter()
    run(obj)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        obj = prepare()
        t0 = time.perf_counter()
        run(obj)
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", default=",".join(CASES))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-peers", action="store_true")
    p.add_argument("--save", action="store_true")
    args = p.parse_args(argv)
    keep = bench_env.limit_threads()  # noqa: F841
    import jaxmm

    warnings.simplefilter("ignore")
    rows = []
    for task in args.tasks.split(","):
        for key, dataset, formula, recorded in CASES[task]:
            df = jaxmm.datasets.load(dataset)
            if task == "profile" and not hasattr(jaxmm.LinearMixedModel, "profile"):
                rows.append([task, key, "n/a", "n/a", "", "", "not built"])
                continue
            first, warm = timed(*jaxmm_task(jaxmm, task, df, formula), args.repeats)
            peer = None if args.no_peers else mixedlm_task(task, df, formula)
            pw = None
            if peer is not None:
                try:
                    pw = timed(*peer, max(1, args.repeats // 2))[1]
                except Exception as e:  # a peer failing is reported, not fatal
                    print(f"mixedlm {task} {key}: {type(e).__name__}: {e}", file=sys.stderr)
            rows.append([
                task, key, bench_report.fmt_time(first), bench_report.fmt_time(warm),
                bench_report.fmt_ratio(recorded, warm) if recorded else "",
                (bench_report.fmt_time(pw) + " (" + bench_report.fmt_ratio(pw, warm) + ")") if pw else "",
                "",
            ])
            print(" | ".join(rows[-1]), file=sys.stderr)
    meta = {**bench_env.machine(), **bench_env.versions()}
    out = [f"# jaxmm inference benchmark ({bench_env.today()})", "",
           "; ".join(f"{k}: {v}" for k, v in meta.items()), "", bench_env.thread_note(), "",
           bench_report.table(
               ["task", "model", "jaxmm cold (compile)", "jaxmm warm", "vs recorded R",
                "mixedlm warm (x jaxmm)", "note"], rows),
           "", "Recorded R figures (issue text, same machine kind): lmerTest Satterthwaite on "
           "InstEval ~14 s; lme4 profile confint on sleepstudy 1.35 s. mixedlm's Satterthwaite/KR "
           "compute df only; its profile interval covers fixed effects only."]
    text = "\n".join(out)
    print(text)
    if args.save:
        path = os.path.join(HERE, "results", f"inference_{bench_env.today()}.md")
        with open(path, "w") as f:
            f.write(text + "\n")
        print(f"saved {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
