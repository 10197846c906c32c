"""Every analysis of Bates (2005), "Fitting linear mixed models in R — using the lme4
package", R News 5(1), redone with jaxmm, printed in the article's order and layout.

    python examples/lme4_article.py

1. The HR data (heart rate of 24 patients under three drugs, measured over time):
   random intercepts (fm1), correlated random intercepts and slopes (fm2), and independent
   ones (fm3); summaries, anova(fm1), VarCorr, ranef, anova(fm1, fm2), anova(fm1, fm3, fm2).
2. The star data (Tennessee class-size study): math scores with random intercepts and
   slopes for students and schools, crossed; VarCorr and anova.
3. The Pixel data: radiology pixel intensity over days for dogs and sides, with the nested
   factor made explicit (Dog:Side) as the article does.

``main()`` returns the fitted models so that tests can check the numbers against lme4's.
"""

from __future__ import annotations

import warnings

import jaxmm

HR_MODELS = {
    "fm1": "HR ~ baseHR + Time * Drug + (1 | Patient)",
    "fm2": "HR ~ baseHR + Time * Drug + (Time | Patient)",
    "fm3": "HR ~ baseHR + Time * Drug + (1 | Patient) + (Time - 1 | Patient)",
}
STAR = "math ~ gr + sx + eth + cltype + (yrs | id) + (yrs | sch)"
PIXEL = "pixel ~ day + I(day^2) + (day | Dog) + (1 | DS)"


def section(title: str, show) -> None:
    show("")
    show("=" * len(title))
    show(title)
    show("=" * len(title))


def hr_analysis(show=print) -> dict:
    hr = jaxmm.datasets.load("HR")
    fits = {k: jaxmm.lmer(f, hr, data_name="HR") for k, f in HR_MODELS.items()}
    section("HR: random intercepts (fm1)", show)
    show(fits["fm1"].summary(ddf="lme4"))
    section("anova(fm1)", show)
    show(fits["fm1"].anova(ddf="lme4"))
    section("HR: correlated random intercepts and slopes (fm2)", show)
    show(fits["fm2"].summary(ddf="lme4"))
    section("VarCorr(fm2)", show)
    show(fits["fm2"].varcorr())
    section("ranef(fm2)", show)
    show(fits["fm2"].ranef_dict()["Patient"])
    section("HR: independent intercepts and slopes (fm3)", show)
    show(fits["fm3"].summary(ddf="lme4"))
    section("anova(fm1, fm2)", show)
    show(jaxmm.anova(fm1=fits["fm1"], fm2=fits["fm2"]))
    section("anova(fm1, fm3, fm2)", show)
    show(jaxmm.anova(fm1=fits["fm1"], fm3=fits["fm3"], fm2=fits["fm2"]))
    return fits


def star_analysis(show=print):
    star = jaxmm.datasets.load("star")
    fit = jaxmm.lmer(STAR, star, data_name="star")
    section("star: crossed random effects of students and schools", show)
    show(fit.summary(ddf="lme4"))
    section("VarCorr", show)
    show(fit.varcorr())
    section("anova", show)
    show(fit.anova(ddf="lme4"))
    return fit


def pixel_analysis(show=print):
    pixel = jaxmm.datasets.load("Pixel")
    # the article makes the nested factor explicit: Pixel$DS <- with(Pixel, Dog:Side)
    pixel["DS"] = (pixel["Dog"].astype(str) + ":" + pixel["Side"].astype(str)).astype("category")
    fit = jaxmm.lmer(PIXEL, pixel, data_name="Pixel")
    section("Pixel: random slopes per dog, intercepts per dog-side", show)
    show(fit.summary(ddf="lme4"))
    return fit


def main(show=print) -> dict:
    with warnings.catch_warnings():
        # lme4 warns on star (max|grad| 0.0025) where jaxmm converges; nothing to see here
        warnings.simplefilter("default", jaxmm.JaxmmWarning)
        out = hr_analysis(show)
        out["star"] = star_analysis(show)
        out["pixel"] = pixel_analysis(show)
    return out


if __name__ == "__main__":
    main()
