"""Format the benchmark results as Markdown: a header, three tables and notes.

Every number is formatted here; ``bench_lmm.py`` only collects them. Ratios are always
*other time / jaxmm warm time*, so a value above 1 means jaxmm is faster.
"""

from __future__ import annotations


def fmt_time(s: float | None) -> str:
    if s is None:
        return "–"
    if s < 0:
        return f"{s * 1e3:.1f} ms"  # compile estimate below noise
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_ratio(other: float | None, jaxmm: float | None) -> str:
    if other is None or not jaxmm:
        return "–"
    return f"{other / jaxmm:.2f}x"


def fmt_crit(c: float | None) -> str:
    return "–" if c is None else f"{c:.4f}"


def fmt_diff(c: float | None, ref: float | None) -> str:
    if c is None or ref is None:
        return "–"
    return f"{c - ref:+.1e}"


def fmt_mib(m: float | None) -> str:
    return "–" if m is None else f"{m:.0f} MiB"


def table(head: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(head), sep, *(line(r) for r in rows)])


def _peer_cell(peer: dict | None, key: str, fmt) -> str:
    if peer is None:
        return "not run"
    if key in peer:
        return fmt(peer[key])
    return peer.get("short", "–")


def header(meta: dict) -> str:
    m, v = meta["machine"], meta["versions"]
    vers = ", ".join(f"{k} {val}" for k, val in v.items())
    return "\n".join([
        f"# jaxmm LMM benchmark, {meta['date']}, {m['slug']}",
        "",
        f"- **Machine**: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, {m['os']}; "
        f"load average at start {m['loadavg']}",
        f"- **Versions**: {vers}",
        f"- **Threads**: {meta['threads']}",
        f"- **BLAS seen by threadpoolctl**: {meta['blas']}",
        f"- **Command**: `{meta['command']}`",
        *([f"- **Bytecode**: {meta['bytecode']}"] if meta.get("bytecode") else []),
        "- All fits REML. Times are wall-clock. Ratios are *other / jaxmm warm*: above 1 "
        "means jaxmm is faster. lme4 times are recorded figures (lme4 1.1-31, R 4.2.2, "
        "reference BLAS, same machine kind; see `benchmarks/lme4_reference.md`).",
    ])


def jaxmm_table(rows: list[dict]) -> str:
    head = ["model", "nobs", "setup", "compile", "optimize only", "warm fit", "cold (empty cache)",
            "cold (cached)", "peak RSS (cold)", "evals", "REMLcrit jaxmm", "REMLcrit lme4",
            "jaxmm - lme4"]
    body = []
    for r in rows:
        cold = r.get("cold") or {}
        body.append([
            r["key"], str(r.get("nobs", "–")), fmt_time(r.get("setup_s")),
            fmt_time(r.get("compile_s")), fmt_time(r.get("optimize_s")),
            f"{fmt_time(r.get('warm_s'))} (n={r.get('n_warm', 0)})",
            cold.get("empty_txt", "not run"), cold.get("cached_txt", "not run"),
            fmt_mib(cold.get("peak_rss_mib")), str(r.get("n_eval", "–")),
            fmt_crit(r.get("criterion")), fmt_crit(r["lme4"]["criterion"]),
            fmt_diff(r.get("criterion"), r["lme4"]["criterion"]),
        ])
    return table(head, body)


def speed_table(rows: list[dict]) -> str:
    head = ["model", "jaxmm warm", "lme4", "lme4 / jaxmm", "lme4 OpenBLAS",
            "lme4 OpenBLAS / jaxmm", "mixedlm warm", "mixedlm / jaxmm", "statsmodels warm",
            "statsmodels / jaxmm"]
    body = []
    for r in rows:
        w, l4 = r.get("warm_s"), r["lme4"]["median_s"]
        ob = r["model"].lme4_openblas_s
        peers = r.get("peers") or {}
        cells = [r["key"], fmt_time(w), fmt_time(l4), fmt_ratio(l4, w), fmt_time(ob),
                 fmt_ratio(ob, w)]
        for name in ("mixedlm", "statsmodels"):
            p = peers.get(name)
            cells.append(_peer_cell(p, "warm_s", fmt_time))
            cells.append(fmt_ratio(p.get("warm_s"), w) if p and "warm_s" in p else "–")
        body.append(cells)
    return table(head, body)


def peer_table(rows: list[dict]) -> str:
    head = ["model", "mixedlm REMLcrit", "mixedlm - lme4", "mixedlm evals", "mixedlm peak RSS",
            "statsmodels REMLcrit", "statsmodels - lme4", "statsmodels peak RSS"]
    body = []
    for r in rows:
        ref = r["lme4"]["criterion"]
        peers = r.get("peers") or {}
        mx, sm = peers.get("mixedlm"), peers.get("statsmodels")
        body.append([
            r["key"],
            _peer_cell(mx, "criterion", fmt_crit),
            fmt_diff(mx.get("criterion"), ref) if mx else "–",
            _peer_cell(mx, "n_eval", str),
            _peer_cell(mx, "peak_rss_mib", fmt_mib) if mx and "criterion" in mx else "–",
            _peer_cell(sm, "criterion", fmt_crit),
            fmt_diff(sm.get("criterion"), ref) if sm else "–",
            _peer_cell(sm, "peak_rss_mib", fmt_mib) if sm and "criterion" in sm else "–",
        ])
    return table(head, body)


def notes(rows: list[dict]) -> str:
    out = []
    for r in rows:
        items = []
        cold = r.get("cold") or {}
        for tag, label in (("empty", "cold, empty cache"), ("cached", "cold, cached")):
            if cold.get(tag):
                items.append(f"{label}: {cold[tag]}")
        if "cache_entries" in cold:
            items.append(f"persistent cache files written by the first cold run: "
                         f"{cold['cache_entries']}")
        if r.get("first_s") is not None:
            items.append(f"first in-process fit {fmt_time(r['first_s'])} (compile = first - "
                         f"warm median); warm fits {', '.join(fmt_time(t) for t in r['warm_all'])}")
        if r["lme4"].get("feval"):
            items.append(f"lme4 evaluations {r['lme4']['feval']:.0f}")
        for w in r.get("warnings", []):
            items.append(f"jaxmm warning: {w}")
        for name, p in (r.get("peers") or {}).items():
            if p.get("status") != "ok":
                items.append(f"{name}: {p.get('status')}")
            if p.get("first_s") is not None:
                items.append(f"{name}: first call {fmt_time(p['first_s'])}, warm median of "
                             f"{p.get('n_warm', 0)}, converged={p.get('converged')}")
            for w in p.get("warnings", []):
                items.append(f"{name} warning: {w}")
        out.append(f"- **{r['key']}** (`{r['model'].formula}`, lme4 id `{r['model'].lme4_id}`): "
                   + "; ".join(items))
    return "\n".join(out)


def columns_legend() -> str:
    return "\n".join([
        "Columns: *setup* = `lformula` + `mk_devfun` (warm, median); *compile* = first "
        "in-process `jaxmm.lmer` minus the warm median; *warm fit* = median of full "
        "`jaxmm.lmer` calls from the DataFrame (setup included; what a user waits for); "
        "*cold* = wall time of a fresh `python -c \"import jaxmm; ...\"` process (interpreter, "
        "import, data load, compile or persistent-cache load, fit), first with an empty cache "
        "directory, then again with the cache that run left; *peak RSS* = peak resident memory "
        "(`VmHWM`) of that fresh process (empty-cache run for jaxmm, the worker process for a "
        "peer: Python, pandas, the package, the data and its fits); *evals* = objective "
        "evaluations of the optimizer.",
    ])


def render(meta: dict, rows: list[dict]) -> str:
    return "\n\n".join([
        header(meta),
        "## jaxmm",
        jaxmm_table(rows),
        "## Speed against lme4 and Python peers (warm, full fit from the data frame)",
        speed_table(rows),
        "## Peers fit the same model (criterion and memory)",
        peer_table(rows),
        "## Notes",
        columns_legend(),
        notes(rows),
    ]) + "\n"
