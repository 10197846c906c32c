"""Simulation-based power of a sleepstudy-like design, batched with jaxmm.

Design: each subject is measured on days 0..9; Reaction ~ Days + (Days|Subject), with
variance components as estimated on sleepstudy (sd of intercepts 24.7, of slopes 5.9,
correlation 0.07, residual sd 25.6). For each number of subjects, every replicate for every
effect size (the Days slope) is simulated at once (NumPy, vectorized) and all of them are
fitted as ONE batched jaxmm computation (``jaxmm.lmer_many``). Power is the share of
replicates whose Wald z for the slope exceeds 1.96 in absolute value. The curves are
drawn with matplotlib (``pip install jaxmm[plot]``).

Usage:
    python examples/power_analysis.py                  # 500 replicates per cell, power.png
    python examples/power_analysis.py --nsim 100 --out /tmp/power.png
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

import jaxmm

#: sleepstudy's REML estimates (lme4): intercept, slope sd, correlation, residual sd.
SD_INT, SD_SLOPE, CORR, SIGMA, INTERCEPT = 24.74, 5.92, 0.066, 25.59, 251.4


def simulate_design(n_subjects: int, effects, nsim: int, seed: int):
    """The design's data frame and the responses (one column per replicate and effect)."""
    days = np.tile(np.arange(10.0), n_subjects)
    subject = np.repeat([f"s{i:03d}" for i in range(n_subjects)], 10)
    df = pd.DataFrame({"Days": days, "Subject": pd.Categorical(subject)})
    cov = np.array([[SD_INT**2, CORR * SD_INT * SD_SLOPE], [CORR * SD_INT * SD_SLOPE, SD_SLOPE**2]])
    L = np.linalg.cholesky(cov)
    rng = np.random.default_rng(seed)
    k = len(effects) * nsim
    b = rng.standard_normal((k, n_subjects, 2)) @ L.T  # random intercepts and slopes
    codes = df["Subject"].cat.codes.to_numpy()
    slope = np.repeat(np.asarray(effects, float), nsim)[:, None]
    Y = INTERCEPT + slope * days + b[:, codes, 0] + b[:, codes, 1] * days
    Y += SIGMA * rng.standard_normal(Y.shape)
    names = [f"y{j}" for j in range(k)]
    return pd.concat([df, pd.DataFrame(Y.T, columns=names)], axis=1), names


def power_table(subjects=(6, 10, 18, 30), effects=(0.0, 2.0, 4.0, 6.0, 8.0), nsim: int = 500,
                seed: int = 1) -> pd.DataFrame:
    """Power (rows: effect sizes; columns: numbers of subjects)."""
    out = {}
    for n in subjects:
        df, names = simulate_design(n, effects, nsim, seed + n)
        fits = jaxmm.lmer_many("y ~ Days + (Days|Subject)", df, names, progress=False)
        z = (fits.table["Days"] / fits.table["se_Days"]).to_numpy().reshape(len(effects), nsim)
        ok = fits.table["converged"].to_numpy().reshape(len(effects), nsim)
        out[n] = [(np.abs(zi[oi]) > 1.96).mean() for zi, oi in zip(z, ok)]
    table = pd.DataFrame(out, index=pd.Index(effects, name="slope"))
    table.columns.name = "subjects"
    return table


def plot(table: pd.DataFrame, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for n in table.columns:
        ax.plot(table.index, table[n], marker="o", label=f"{n} subjects")
    ax.axhline(0.8, color="grey", lw=0.8, ls="--")
    ax.axhline(0.05, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("true Days slope (ms/day)")
    ax.set_ylabel("power (|z| > 1.96)")
    ax.set_ylim(0, 1.02)
    ax.legend()
    ax.set_title("Power of Reaction ~ Days + (Days|Subject)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nsim", type=int, default=500, help="replicates per effect and design")
    p.add_argument("--subjects", default="6,10,18,30", help="comma-separated subject counts")
    p.add_argument("--effects", default="0,2,4,6,8", help="comma-separated true slopes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", default="power.png", help="where to save the plot")
    a = p.parse_args(argv)
    subjects = [int(s) for s in a.subjects.split(",")]
    effects = [float(s) for s in a.effects.split(",")]
    t0 = time.perf_counter()
    table = power_table(subjects, effects, a.nsim, a.seed)
    dt = time.perf_counter() - t0
    nfit = a.nsim * len(effects) * len(subjects)
    print(table.round(3).to_string())
    print(f"{nfit} fits in {dt:.1f} s (compile included); plot: {a.out}")
    plot(table, a.out)
    return table


if __name__ == "__main__":
    main()
