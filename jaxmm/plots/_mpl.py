"""matplotlib, imported on first use, with a clear message when the extra is missing."""

from __future__ import annotations

from ..errors import JaxmmError


def pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise JaxmmError("plotting needs matplotlib: pip install 'jaxmm[plot]'") from e
    return plt


def grid(n: int, ncols: int = 3, size: float = 3.2):
    """A figure with ``n`` axes in up to ``ncols`` columns (surplus axes removed)."""
    plt = pyplot()
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]
