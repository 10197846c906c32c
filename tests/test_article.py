"""examples/lme4_article.py reproduces the lme4 R News article's numbers (checked against
today's lme4 values in the reference fixtures, which agree with the article's printed ones)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

import jaxmm
from conftest import load_ref

EXAMPLE = Path(__file__).parent.parent / "examples" / "lme4_article.py"


def run_example():
    spec = importlib.util.spec_from_file_location("lme4_article", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    printed: list[str] = []
    fits = mod.main(show=lambda x: printed.append(str(x)))
    return fits, "\n".join(printed)


def test_article_numbers():
    fits, text = run_example()
    for key, ref_id in [("fm1", "hr1"), ("fm2", "hr2"), ("fm3", "hr3"), ("star", "star"), ("pixel", "pixel")]:
        ref, m = load_ref(ref_id), fits[key]
        assert abs(m.objective - ref["REMLcrit"]) < 1e-6 * ref["REMLcrit"] + (0.01 if key == "star" else 0), key
        assert np.allclose(m.fixef.to_numpy(), list(ref["fixef"].values()), rtol=2e-4), key
        vc = pd.DataFrame(ref["VarCorr"])
        assert np.allclose(m.varcorr().sdcor.to_numpy(), vc.sdcor.to_numpy(), rtol=2e-3), key
        want = pd.DataFrame(ref["anova_lme4"]).set_index("term")
        if len(want):
            assert np.allclose(m.anova(ddf="lme4")["F value"].to_numpy(), want["F value"].to_numpy(), rtol=1e-3)
    lrt = pd.DataFrame(load_ref("lrt_hr")["table"]).set_index("model")
    got = jaxmm.anova(fm1=fits["fm1"], fm3=fits["fm3"], fm2=fits["fm2"])
    assert np.allclose(got["Chisq"].to_numpy()[1:], lrt["Chisq"].to_numpy()[1:].astype(float), atol=1e-5)
    for heading in ["anova(fm1)", "VarCorr(fm2)", "ranef(fm2)", "anova(fm1, fm3, fm2)",
                    "star: crossed random effects", "Pixel: random slopes"]:
        assert heading in text
    assert "Number of obs: 24578, groups:  id, 10732; sch, 80" in text
