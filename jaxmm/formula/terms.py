"""The parsed form of an lme4 model formula.

Example:
    >>> t = RandomTerm(lhs="1 + Days", group="Subject", group_factors=("Subject",))
    >>> t.label
    '1 + Days | Subject'
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["RandomTerm", "ParsedFormula"]


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(lhs | group)`` after lme4's expansions.

    Attributes:
        lhs: the term's own model formula (right-hand side), in formulaic syntax:
            ``"1 + Days"``, ``"0 + Days"``, ``"1"``, ``"Time - 1"``.
        group: lme4's name of the grouping factor: ``"Subject"``, ``"cask:batch"``.
        group_factors: the data columns making up the group, in the order of ``group``.
    """

    lhs: str
    group: str
    group_factors: tuple[str, ...]

    @property
    def label(self) -> str:
        """The term as lme4 prints it in messages: ``"1 + Days | Subject"``."""
        return f"{self.lhs} | {self.group}"


@dataclass(frozen=True)
class ParsedFormula:
    """An lme4 formula split into response, fixed part and random-effects terms.

    Attributes:
        text: the original formula text.
        response: the response expression as written (``"Reaction"``, ``"log(y)"``).
        fixed: the fixed-effects right-hand side in formulaic syntax, with the intercept
            made explicit (``"1 + Days"``; ``"0 + x"`` when the intercept is removed).
        random: the expanded random-effects terms in formula order (not sorted).
    """

    text: str
    response: str
    fixed: str
    random: tuple[RandomTerm, ...]

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping factor names, in order of first appearance."""
        return tuple(dict.fromkeys(t.group for t in self.random))
