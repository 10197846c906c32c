"""Plots, headless: each returns a Figure with the expected panels and points."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import jaxmm.plots as plots  # noqa: E402
from conftest import fitted  # noqa: E402


def test_caterpillar_panels_and_intervals():
    m = fitted("sleep_full")
    fig = plots.caterpillar(m)
    assert [ax.get_title() for ax in fig.axes] == ["Subject: (Intercept)", "Subject: Days"]
    re = m.ranef()
    for ax, term in zip(fig.axes, ["(Intercept)", "Days"]):
        x = np.sort(ax.lines[0].get_xdata())
        assert np.allclose(x, np.sort(re[re.term == term].condval))
    pen = plots.caterpillar(fitted("penicillin"), groups="sample")
    assert [ax.get_title() for ax in pen.axes] == ["sample: (Intercept)"]
    assert len(pen.axes[0].lines[0].get_xdata()) == 6


def test_residual_plots():
    m = fitted("hr2")
    f = plots.resid_fitted(m)
    pts = f.axes[0].collections[0].get_offsets()
    assert pts.shape == (120, 2) and np.allclose(pts[:, 0], m.fitted())
    q = plots.qq_residuals(m)
    assert len(q.axes[0].collections[0].get_offsets()) == 120
    r = plots.qq_ranef(fitted("sleep_full"))
    assert len(r.axes) == 2 and len(r.axes[0].collections[0].get_offsets()) == 18


def test_profile_zeta_panels():
    m = fitted("sleep_full")
    prof = m.profile()
    fig = plots.profile_zeta(prof)
    names = ["sd_(Intercept)|Subject", "cor_Days.(Intercept)|Subject", "sd_Days|Subject", "sigma",
             "(Intercept)", "Days"]
    assert [ax.get_xlabel() for ax in fig.axes] == names
    days = prof.traces[prof.traces.param == "Days"]
    assert np.allclose(np.sort(fig.axes[-1].lines[0].get_xdata()), np.sort(days.value))


def test_boot_densities_panels():
    m = fitted("sleep_full")
    boot = m.bootstrap(200, seed=3, progress=False)
    fig = plots.boot_densities(boot, params=["Days", "sigma"])
    assert [ax.get_xlabel() for ax in fig.axes] == ["Days", "sigma"]
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) >= 10 and sum(heights) > 0
