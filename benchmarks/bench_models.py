"""The benchmarked models and the lme4 reference figures that go with them.

Each :class:`Model` names the bundled data set, the lme4 formula (all fits are REML), the id
of lme4's reference run, and how each peer package expresses the same model: ``mixedlm``
takes lme4 formulas directly; ``statsmodels`` MixedLM has one grouping factor per model, so
crossed factors go in as variance components of a single all-ones group, and models it
cannot express (or not in feasible memory) carry a reason instead.

The reference figures are read from the copies in this folder (see ``lme4_reference.md``).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclass(frozen=True)
class Model:
    key: str
    dataset: str
    formula: str
    lme4_id: str
    #: keyword arguments for ``mixedlm.lmer`` (besides formula, data, REML=True)
    mixedlm_kwargs: dict = field(default_factory=dict)
    #: ``statsmodels.formula.api.mixedlm`` arguments, or None
    statsmodels: dict | None = None
    #: why statsmodels is not run (when ``statsmodels`` is None)
    statsmodels_reason: str = ""
    #: lme4 with single-threaded OpenBLAS, same machine kind (published figure), seconds
    lme4_openblas_s: float | None = None
    large: bool = False


MODELS: dict[str, Model] = {
    m.key: m
    for m in [
        Model(
            "sleepstudy", "sleepstudy", "Reaction ~ Days + (Days|Subject)", "sleep_full",
            statsmodels=dict(formula="Reaction ~ Days", groups="Subject", re_formula="~Days"),
            lme4_openblas_s=0.011,
        ),
        Model(
            "penicillin", "Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)", "penicillin",
            statsmodels=dict(
                formula="diameter ~ 1", groups=None, re_formula="0",
                vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"},
            ),
        ),
        Model(
            "hr2", "HR", "HR ~ baseHR + Time * Drug + (Time | Patient)", "hr2",
            statsmodels=dict(formula="HR ~ baseHR + Time * Drug", groups="Patient",
                             re_formula="~Time"),
        ),
        Model(
            "star", "star", "math ~ gr + sx + eth + cltype + (yrs | id) + (yrs | sch)", "star",
            # star$gr is an ordered factor: lme4 and jaxmm give it polynomial contrasts,
            # mixedlm needs to be told (the REML criterion depends on the X coding).
            mixedlm_kwargs={"contrasts": {"gr": "poly"}},
            statsmodels_reason=(
                "not expressible: two crossed grouping factors with correlated slopes "
                "(id is not nested in sch); MixedLM allows one such factor, and the crossed "
                "variance-component form needs a dense 24578 x 21624 design"
            ),
            lme4_openblas_s=2.46, large=True,
        ),
        Model(
            "insteval", "InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)",
            "insteval",
            statsmodels_reason=(
                "infeasible: crossed factors need one group with a dense 73421 x 4128 "
                "random-effects design (2.4 GB) and dense 4128-square solves per step"
            ),
            lme4_openblas_s=2.99, large=True,
        ),
    ]
}


def _read_csv(name: str) -> dict[str, dict[str, str]]:
    with open(os.path.join(HERE, name), newline="") as fh:
        return {row["model"]: row for row in csv.DictReader(fh)}


def lme4_reference(lme4_id: str) -> dict:
    """lme4's recorded median fit time, criterion and function evaluations for a model id."""
    timings = _read_csv("lme4_timings.csv").get(lme4_id, {})
    crit = _read_csv("lme4_criteria.csv").get(lme4_id, {})

    def num(row, key):
        value = row.get(key, "")
        return float(value) if value not in ("", "NA") else None

    return {
        "median_s": num(timings, "median_s"),
        "min_s": num(timings, "min_s"),
        "feval": num(timings, "feval"),
        "criterion": num(crit, "REMLcrit") if crit.get("REML") == "TRUE" else num(crit, "deviance"),
        "nobs": num(crit, "nobs"),
    }
