"""Read *simple* formula parts without formulaic: ``0``, ``1`` and products of bare column
names (``a:b``, ``a*b``) joined by ``+`` and ``-``.

Terms come out as formulaic's parser gives them, so either route answers alike: the
intercept is implicit unless removed (``0 +``, ``- 1``); ``a*b`` is ``a + b + a:b`` (``:``
binds tighter than ``*``; both are left-associative); a term already present is not added
again (the first spelling is kept: ``b:a + a:b`` is ``b:a``); ``-`` removes terms with the
same variables; terms are listed by degree (stable). ``variables`` are the names in order
of first appearance among the remaining terms (R's variable order).

Parentheses may group a sum of such products (``(a + b):c``, ``r2 ~ (a + b) + c``).
Anything else (calls, ``I()``, numbers other than 0/1, ``0``/``1``/``-`` inside
parentheses, ``^``, ``/``, ``%in%``, ``.``, backquotes, unary ``-`` other than a leading
``-1``, ``- 0``) is not simple: ``parse_simple`` returns None and the caller uses
formulaic.

Example:
    >>> p = parse_simple("1 + Time * Drug")
    >>> p.terms, p.variables
    (((), ('Time',), ('Drug',), ('Time', 'Drug')), ('Time', 'Drug'))
    >>> p.labels
    ('1', 'Time', 'Drug', 'Time:Drug')
    >>> parse_simple("log(x)") is None
    True
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from ..errors import FormulaError
from .tokens import LPAREN, NAME, NUMBER, OP, RPAREN, Token, tokenize

__all__ = ["SimplePart", "parse_simple", "formulaic_only"]

Term = tuple[str, ...]  # variables of a term, as written; () is the intercept

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\Z")
_enabled = True


@dataclass(frozen=True)
class SimplePart:
    """A simple formula part.

    Attributes:
        terms: the terms in formulaic's "degree" order; ``()`` is the intercept.
        variables: the column names, in order of first appearance.

    Example:
        >>> parse_simple("0 + g").terms
        (('g',),)
    """

    terms: tuple[Term, ...]
    variables: tuple[str, ...]

    @property
    def intercept(self) -> bool:
        """Whether the part has an intercept.

        Example:
            >>> parse_simple("x - 1").intercept
            False
        """
        return () in self.terms

    @property
    def labels(self) -> tuple[str, ...]:
        """formulaic's term labels (``"1"`` for the intercept, ``"b:a"``).

        Example:
            >>> parse_simple("b:a + a").labels
            ('1', 'a', 'b:a')
        """
        return tuple(":".join(t) if t else "1" for t in self.terms)


@contextmanager
def formulaic_only() -> Iterator[None]:
    """Within the block, no part is simple: everything goes through formulaic (to compare
    the two routes).

    Example:
        >>> with formulaic_only():
        ...     parse_simple("x") is None
        True
    """
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


def parse_simple(rhs: str) -> SimplePart | None:
    """The terms of a simple formula part, or None if it is not simple (see module).

    Example:
        >>> parse_simple("a*b - a:b").labels
        ('1', 'a', 'b')
    """
    return _parse(rhs) if _enabled else None


class _NotSimple(Exception):
    pass


def _add(terms: list[Term], new: list[Term]) -> None:
    sets = [frozenset(t) for t in terms]
    for t in new:
        s = frozenset(t)
        if s not in sets:
            terms.append(t)
            sets.append(s)


def _interact(x: list[Term], y: list[Term]) -> list[Term]:
    out: list[Term] = []
    for a in x:
        for b in y:
            _add(out, [tuple(dict.fromkeys(a + b))])
    return out


class _Reader:
    """Recursive descent over the tokens: sum := summand (('+'|'-') summand)*."""

    def __init__(self, tokens: list[Token]):
        self.tokens, self.k = tokens, 0

    def peek(self) -> Token | None:
        return self.tokens[self.k] if self.k < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise _NotSimple
        self.k += 1
        return tok

    def name(self) -> str:
        tok = self.take()
        if tok.kind != NAME or not _NAME.match(tok.text) or keyword.iskeyword(tok.text):
            raise _NotSimple
        return tok.text

    def operand(self) -> list[Term]:
        """name | '(' product ('+' product)* ')'."""
        tok = self.peek()
        if tok is None or tok.kind != LPAREN:
            return [(self.name(),)]
        self.k += 1
        terms = self.product()
        while (tok := self.take()).kind == OP and tok.text == "+":
            _add(terms, self.product())
        if tok.kind != RPAREN:
            raise _NotSimple
        return terms

    def group(self) -> list[Term]:
        """operand (':' operand)*."""
        terms = self.operand()
        while (tok := self.peek()) is not None and tok.kind == OP and tok.text == ":":
            self.k += 1
            terms = _interact(terms, self.operand())
        return terms

    def product(self) -> list[Term]:
        """group ('*' group)*: X*Y is X + Y + X:Y."""
        terms = self.group()
        while (tok := self.peek()) is not None and tok.kind == OP and tok.text == "*":
            self.k += 1
            other = self.group()
            out = list(terms)
            _add(out, other)
            _add(out, _interact(terms, other))
            terms = out
        return terms

    def summand(self) -> list[Term] | str:
        tok = self.peek()
        if tok is not None and tok.kind == NUMBER:
            self.k += 1
            if tok.text not in ("0", "1"):
                raise _NotSimple
            return tok.text
        return self.product()

    def read(self) -> list[Term]:
        terms: list[Term] = [()]  # formulaic's implicit intercept
        sign = "+"
        first = self.peek()
        if first is not None and first.kind == OP and first.text == "-":
            self.k += 1
            sign = "-"
            nxt = self.peek()
            if nxt is None or nxt.kind != NUMBER or nxt.text != "1":
                raise _NotSimple
        while True:
            item = self.summand()
            if item == "1" and sign == "+":
                _add(terms, [()])
            elif item == "0" and sign == "-":
                raise _NotSimple  # R's "- 0": rare, left to formulaic
            elif item in ("0", "1"):
                terms[:] = [t for t in terms if t]
            elif sign == "+":
                _add(terms, item)
            else:
                drop = {frozenset(t) for t in item}
                terms[:] = [t for t in terms if frozenset(t) not in drop]
            tok = self.peek()
            if tok is None:
                return terms
            if tok.kind != OP or tok.text not in "+-" or len(tok.text) != 1:
                raise _NotSimple
            sign = tok.text
            self.k += 1


@lru_cache(maxsize=512)
def _parse(rhs: str) -> SimplePart | None:
    try:
        tokens = tokenize(rhs)
    except FormulaError:
        return None
    if not tokens:
        return None
    try:
        terms = _Reader(tokens).read()
    except _NotSimple:
        return None
    variables = tuple(dict.fromkeys(v for t in terms for v in t))
    ordered = tuple(sorted(terms, key=len))  # stable: formulaic's "degree" ordering
    return SimplePart(ordered, variables)
