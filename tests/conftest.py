"""Shared test helpers: lme4 reference fixtures and the data sets they were fitted on.

The fixtures in tests/fixtures/lme4/ are lme4's results (R 4.2.2, lme4 1.1-31, lmerTest
3.1-3, pbkrtest 0.5.2) copied from the project's shared reference folder; see the README
there. Tests never read anything outside the repository.
"""

from __future__ import annotations

import json
import warnings
from functools import lru_cache
from pathlib import Path

import pandas as pd
import pytest

import jaxmm

FIXTURES = Path(__file__).parent / "fixtures" / "lme4"


def fixture_ids(model_type: str = "LMM") -> list[str]:
    out = []
    for path in sorted(FIXTURES.glob("*.json")):
        d = json.loads(path.read_text())
        if isinstance(d, dict) and d.get("model_type") == model_type:
            out.append(d["id"])
    return out


@lru_cache(maxsize=None)
def load_ref(model_id: str) -> dict:
    return json.loads((FIXTURES / f"{model_id}.json").read_text())


def dataset_for(ref: dict) -> pd.DataFrame:
    """The data set a fixture was fitted on (star_trt is star with ``gr`` unordered)."""
    if ref["dataset"] == "star_trt":
        df = jaxmm.datasets.load("star")
        df["gr"] = df["gr"].cat.as_unordered()
        return df
    return jaxmm.datasets.load(ref["dataset"])


@lru_cache(maxsize=None)
def fitted(model_id: str):
    """Fit the fixture's model once per test session."""
    ref = load_ref(model_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxmm.JaxmmWarning)
        return jaxmm.lmer(ref["formula"], dataset_for(ref), reml=bool(ref["REML"]))


@pytest.fixture
def sleepstudy() -> pd.DataFrame:
    return jaxmm.datasets.load("sleepstudy")
