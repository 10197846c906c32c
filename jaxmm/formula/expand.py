"""Expand lme4's random-effects shorthand into plain ``(lhs | group)`` terms.

Two expansions, applied in lme4's order (``expandDoubleVerts`` then ``expandSlash``):

* ``(1 + x || g)`` -> ``(1 | g) + (0 + x | g)``: one uncorrelated term per term of the
  left-hand side, the intercept first.
* ``(1 | a/b)`` -> ``(1 | b:a) + (1 | a)``; ``(1 | a/b/c)`` -> ``(1 | c:(b:a)) +
  (1 | b:a) + (1 | a)``: lme4 names a nested factor inner-first and lists the deepest
  term first.

Example:
    >>> [t.group for t in expand_bar("1", "batch/cask", double=False)]
    ['cask:batch', 'batch']
    >>> [t.lhs for t in expand_bar("1 + Days", "Subject", double=True)]
    ['1', '0 + Days']
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import FormulaError
from .simple import parse_simple
from .terms import RandomTerm
from .tokens import NAME, OP, tokenize

__all__ = ["expand_bar", "parse_group", "split_lhs_terms"]


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith("`") else name


def parse_group(text: str) -> list[list[str]]:
    """Parse a grouping expression into its ``/``-separated components, each a list of
    ``:``-joined column names.

    Raises ``FormulaError`` if the expression is not made of names, ``:`` and ``/``.

    Example:
        >>> parse_group("a/b:c")
        [['a'], ['b', 'c']]
    """
    tokens = tokenize(text)
    components: list[list[str]] = [[]]
    expect_name = True
    for tok in tokens:
        if expect_name and tok.kind == NAME:
            components[-1].append(_unquote(tok.text))
            expect_name = False
        elif not expect_name and tok.kind == OP and tok.text in (":", "/"):
            if tok.text == "/":
                components.append([])
            expect_name = True
        else:
            err = FormulaError(
                f"cannot read the grouping factor {text.strip()!r} at {tok.text!r}: a grouping "
                "factor must be a column name, an interaction like a:b, or a nesting like a/b"
            )
            err.offset = tok.start  # type: ignore[attr-defined]
            raise err
    if expect_name:
        err = FormulaError(f"incomplete grouping factor {text.strip()!r}: a name is missing")
        err.offset = len(text.rstrip())  # type: ignore[attr-defined]
        raise err
    return components


def _nest(components: list[list[str]]) -> list[tuple[str, tuple[str, ...]]]:
    """lme4's ``makeInteraction``: (name, factors) of each nested term, deepest first."""
    name = ":".join(components[0])
    factors = tuple(components[0])
    out = [(name, factors)]
    for comp in components[1:]:
        inner = f"({name})" if ":" in name else name
        name = ":".join(comp) + ":" + inner
        factors = tuple(comp) + factors
        out.append((name, factors))
    return out[::-1]


def split_lhs_terms(lhs: str) -> tuple[bool, list[str]]:
    """The intercept flag and term labels of a random-effects left-hand side, in R's
    ``terms()`` order (by degree), using formulaic's parser unless the part is simple.

    Example:
        >>> split_lhs_terms("1 + x*z")
        (True, ['x', 'z', 'x:z'])
        >>> split_lhs_terms("0 + x")
        (False, ['x'])
    """
    simple = parse_simple(lhs)
    if simple is not None:
        return simple.intercept, [lab for lab in simple.labels if lab != "1"]
    from formulaic import Formula

    try:
        terms = list(Formula(lhs).rhs if hasattr(Formula(lhs), "rhs") else Formula(lhs))
    except Exception as e:  # formulaic's own parse errors
        raise FormulaError(f"cannot parse the random-effects term {lhs!r}: {e}") from e
    intercept = any(str(t) == "1" for t in terms)
    labels = [str(t) for t in terms if str(t) not in ("1", "0")]
    return intercept, labels


def expand_bar(
    lhs: str,
    group: str,
    double: bool,
    lhs_terms: Callable[[str], tuple[bool, list[str]]] = split_lhs_terms,
) -> list[RandomTerm]:
    """Expand one ``(lhs | group)`` or ``(lhs || group)`` into ``RandomTerm`` s.

    ``lhs`` is already in formulaic syntax. Terms come out in lme4's order.

    Example:
        >>> [(t.lhs, t.group) for t in expand_bar("x", "a/b", double=True)]
        [('1', 'b:a'), ('1', 'a'), ('0 + x', 'b:a'), ('0 + x', 'a')]
    """
    if double:
        intercept, labels = lhs_terms(lhs)
        lhss = (["1"] if intercept else []) + [f"0 + {lab}" for lab in labels]
    else:
        lhss = [" ".join(lhs.split())]
    nested = _nest(parse_group(group))
    return [RandomTerm(lhs=one, group=name, group_factors=factors)
            for one in lhss for name, factors in nested]
