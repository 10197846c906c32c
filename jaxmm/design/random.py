"""Random-effects terms on the host: grouping-factor indices and the term's own model
matrix; never anything of size n x q_total.

A grouping factor ``a:b`` has levels ``"a_level:b_level"`` in R's order for ``a:b`` (the
first factor varies slowest), unobserved combinations dropped, as lme4 gets them from
``factor(a:b)``.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"a": pd.Categorical(["x", "y", "x"]), "b": [2, 1, 1]})
    >>> idx, levels = group_index(df, ("a", "b"))
    >>> idx.tolist(), levels
    ([1, 2, 0], ('x:1', 'x:2', 'y:1'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from .data import factor_codes

__all__ = ["TermDesign", "check_terms", "compact_codes", "group_index", "lookup_levels"]


@dataclass(frozen=True, eq=False)
class TermDesign:
    """One random-effects term: for each used row, its level and its own covariates.

    Attributes:
        group: lme4's name of the grouping factor (``"Subject"``, ``"cask:batch"``).
        levels: level labels in R's order, unused levels dropped.
        cnames: the term's column names as lme4 prints them (``"(Intercept)"``, ``"Days"``).
        index: int32 (n,) level of each row.
        Xt: float64 (n, q) the term's model matrix.
        lhs: the term's left-hand side (formulaic syntax).
        group_factors: the data columns making up the group.
    """

    group: str
    levels: tuple[str, ...]
    cnames: tuple[str, ...]
    index: np.ndarray
    Xt: np.ndarray
    lhs: str = ""
    group_factors: tuple[str, ...] = field(default=())

    @property
    def nlevels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def q(self) -> int:
        """Random effects per level (columns of ``Xt``)."""
        return self.Xt.shape[1]

    @property
    def label(self) -> str:
        """lme4's name of the term: ``"1 + Days | Subject"``."""
        return f"{self.lhs} | {self.group}"


def compact_codes(codes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of ``codes`` (ints in [0, size)) and each row's rank
    among them (int64), in O(n + size) by counting when ``size`` is moderate (up to 16
    slots per code, 5 bytes each), else by hashing (sorting only the distinct values),
    never by sorting all n rows.

    Example:
        >>> u, inv = compact_codes(np.array([7, 2, 7, 5]), 10)
        >>> u.tolist(), inv.tolist()
        ([2, 5, 7], [2, 0, 2, 1])
    """
    codes = np.asarray(codes)
    if size <= max(4 * codes.size, 1 << 16):
        used = np.bincount(codes, minlength=size) > 0
        rank = np.cumsum(used) - 1
        return np.flatnonzero(used), rank[codes]
    if size <= min(16 * codes.size, 2**31 - 1):  # a byte map and int32 ranks: 5 bytes/slot
        used = np.zeros(size, bool)
        used[codes] = True
        rank = np.cumsum(used, dtype=np.int32)
        return np.flatnonzero(used), rank[codes].astype(np.int64) - 1
    inv, uniq = pd.factorize(codes, sort=True)
    return np.asarray(uniq), inv.astype(np.int64)


def group_index(frame: pd.DataFrame, factors: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Level index (int32) of each row and the level labels of the interaction of
    ``factors`` (R's ``factor(a:b:...)``: first factor slowest, unused dropped)."""
    codes, labels, _ = factor_codes(frame[factors[0]])
    label_lists = [labels]
    combo, size = codes, len(labels)  # combined code, lexicographic in (first, second, ...)
    parts = [codes]
    for name in factors[1:]:
        c, lab, _ = factor_codes(frame[name])
        combo = combo * len(lab) + c
        parts.append(c)
        label_lists.append(lab)
        uniq, combo = compact_codes(combo, size * len(lab))  # keep numbers small
        size = len(uniq)
    uniq, inverse = compact_codes(combo, size)
    if len(factors) == 1:  # usually every level is used (the frame dropped unused ones)
        levels = tuple(labels) if len(uniq) == len(labels) else \
            tuple(labels[u] for u in uniq.tolist())
    else:
        first = np.zeros(len(uniq), dtype=np.int64)
        first[inverse] = np.arange(len(inverse))  # a row of each level
        levels = tuple(":".join(label_lists[j][parts[j][r]] for j in range(len(factors)))
                       for r in first)
    return inverse.astype(np.int32), levels


def lookup_levels(frame: pd.DataFrame, factors: Sequence[str], levels: Mapping[str, int],
                  group: str, allow_new_levels: bool) -> np.ndarray:
    """Map rows of new data to known levels (int32; -1 for a new level if allowed)."""
    labels = None
    for name in factors:
        codes, labs, _ = factor_codes(frame[name])
        if (codes < 0).any():
            raise DataError(f"column {name!r} (grouping factor {group!r}) has missing values")
        col = np.asarray(labs, dtype=object)[codes]
        labels = col if labels is None else labels + ":" + col
    uniq, inverse = np.unique(labels.astype(str), return_inverse=True)
    mapped = np.array([levels.get(u, -1) for u in uniq], dtype=np.int32)
    if not allow_new_levels and (mapped < 0).any():
        new = [str(u) for u, m in zip(uniq, mapped) if m < 0]
        raise DataError(
            f"new level{'s' if len(new) > 1 else ''} {', '.join(map(repr, new[:5]))} of grouping "
            f"factor {group!r} not in the data the model was fitted to; pass "
            "allow_new_levels=True to predict them at the population level"
        )
    return mapped[inverse.reshape(-1)]


def check_terms(terms: Sequence[TermDesign], n: int, glmm: bool = False) -> None:
    """lme4's checks: >1 level per grouping factor, fewer levels than observations
    (``<=`` for GLMMs), and more observations than random effects in each term."""
    seen = {}
    for t in terms:
        seen.setdefault(t.group, t)
    for g, t in seen.items():
        if t.nlevels < 2:
            raise ModelError(
                f"grouping factor {g!r} in term ({t.label}) has {t.nlevels} level after "
                "removing missing values; a random effect needs at least 2 groups (lme4: "
                "grouping factors must have > 1 sampled level). Drop the term or check the data."
            )
        if t.nlevels > n or (t.nlevels == n and not glmm):
            raise ModelError(
                f"number of levels of each grouping factor must be < number of observations "
                f"(problems: {g}: {t.nlevels} levels, {n} observations); one observation per "
                f"level makes term ({t.label}) indistinguishable from the residual"
            )
    for t in terms:
        nre = t.nlevels * t.q
        if n < nre or (n == nre and not glmm):
            raise ModelError(
                f"number of observations (={n}) <= number of random effects (={nre}) for term "
                f"({t.label}); the random-effects parameters and the residual variance are "
                "probably unidentifiable (lme4's check.nobs.vs.nRE)"
            )
