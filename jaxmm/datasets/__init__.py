"""Bundled data sets, as lme4 (and mlmRev, SASmixed, MEMSS) ship them.

Each data set is stored as a gzipped CSV with two JSON side files: ``NAME.levels.json``
(R's factor level order) and ``NAME.types.json`` (which columns are factors and which are
*ordered* factors). Factors come back as pandas ``Categorical`` with R's level order, so
treatment contrasts use R's reference level and ordered factors get polynomial contrasts.

Origin: the CSV/JSON files were exported from R 4.2.2 (lme4 1.1-31, mlmRev 1.0-8,
SASmixed 1.0-5, MEMSS 0.9-3); see ``data/MANIFEST.csv``.

Example:
    >>> import jaxmm
    >>> df = jaxmm.datasets.load("sleepstudy")
    >>> df.shape
    (180, 3)
    >>> df["Subject"].cat.categories[:3].tolist()
    ['308', '309', '310']
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..errors import DataError

__all__ = ["load", "list"]

_DATA = resources.files(__package__) / "data"


@lru_cache(maxsize=None)
def _names() -> dict[str, str]:
    """Map lower-case names to the stored names (``Dyestuff``, ``sleepstudy``...)."""
    out = {}
    for entry in _DATA.iterdir():
        name = entry.name
        if name.endswith(".csv.gz"):
            stem = name[: -len(".csv.gz")]
            out[stem.lower()] = stem
    return out


def list() -> list[str]:  # noqa: A001 - mirrors R's data() listing verb
    """Names of the bundled data sets.

    Example:
        >>> "sleepstudy" in jaxmm.datasets.list()
        True
    """
    return sorted(_names().values(), key=str.lower)


def _resolve(name: str) -> str:
    stored = _names().get(name.lower())
    if stored is None:
        close = difflib.get_close_matches(name.lower(), _names().keys(), n=3)
        hint = f" Did you mean {', '.join(repr(_names()[c]) for c in close)}?" if close else ""
        raise DataError(
            f"No bundled data set named {name!r}.{hint} "
            f"Available: {', '.join(list())}."
        )
    return stored


@lru_cache(maxsize=None)
def _load_cached(stored: str) -> pd.DataFrame:
    types = json.loads((_DATA / f"{stored}.types.json").read_text())["columns"]
    levels = json.loads((_DATA / f"{stored}.levels.json").read_text())
    # factors parsed straight into their categories (R's level order), not as strings
    # converted afterwards: InstEval 65 -> 26 ms
    factors = {c: pd.CategoricalDtype(levels[c], ordered=t == "ordered")
               for c, t in types.items() if t in ("factor", "ordered")}
    with resources.as_file(_DATA / f"{stored}.csv.gz") as path:
        df = pd.read_csv(path, dtype=factors, keep_default_na=True)
    for col, t in types.items():
        if t == "integer" and df[col].isna().any():
            df[col] = df[col].astype("Int64").astype(float)
    return df


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set as a DataFrame (a fresh copy each call).

    Factors are ``pd.Categorical`` in R's level order; ordered factors are ordered.
    Names are matched case-insensitively (``"hr"`` finds ``"HR"``).

    Example:
        >>> df = jaxmm.datasets.load("star")
        >>> df["gr"].cat.ordered
        True
    """
    return _load_cached(_resolve(name)).copy()
