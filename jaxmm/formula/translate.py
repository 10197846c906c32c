"""Translate between R formula expressions and formulaic's (Python) syntax, and name
columns the way R deparses expressions.

R and formulaic agree on the formula operators (``+ - * / : ^ %in%``, ``0``, ``1``), but
inside a function call formulaic evaluates *Python*: R's power ``^`` must become ``**``
and ``TRUE``/``FALSE`` must become ``True``/``False``. Going back, ``r_deparse`` writes an
expression as R's ``deparse()`` would (``I(day^2)``, ``log(x + 1)``), which is how lme4
names model-matrix columns.

Example:
    >>> to_formulaic("day + I(day^2)")
    'day + I(day**2)'
    >>> r_deparse("I(day ** 2)")
    'I(day^2)'
"""

from __future__ import annotations

from .tokens import COMMA, LBRACK, LPAREN, NAME, NUMBER, OP, RBRACK, RPAREN, STRING, Token, tokenize

__all__ = ["to_formulaic", "r_deparse", "is_call_open"]

_PY_WORDS = {"TRUE": "True", "FALSE": "False", "NULL": "None", "Inf": "inf"}
_R_WORDS = {v: k for k, v in _PY_WORDS.items()}
# binary operators R's deparse writes without spaces around them
_TIGHT = {"^", ":", "/", "$", "@", "::"}


def is_call_open(tokens: list[Token], k: int) -> bool:
    """Whether ``tokens[k]`` is the ``(`` of a function call such as ``log(``."""
    return tokens[k].kind == LPAREN and k > 0 and tokens[k - 1].kind == NAME


def to_formulaic(text: str) -> str:
    """Rewrite an R formula (part) so formulaic evaluates it with R's meaning.

    Inside function calls, ``^`` becomes ``**`` and ``TRUE``/``FALSE`` become
    ``True``/``False``. Outside calls the formula operators are left alone (formulaic
    reads ``(a + b)^2`` as R does). Whitespace between tokens is preserved.

    Example:
        >>> to_formulaic("scale(x, center = TRUE) + I((t - 1)^2)")
        'scale(x, center = True) + I((t - 1)**2)'
    """
    tokens = tokenize(text)
    out: list[str] = []
    depth_call = 0  # > 0 while inside a function call's parentheses
    stack: list[bool] = []
    pos = 0
    for k, tok in enumerate(tokens):
        out.append(text[pos:tok.start])
        piece = tok.text
        if tok.kind in (LPAREN, LBRACK):
            call = is_call_open(tokens, k) or tok.kind == LBRACK or depth_call > 0
            stack.append(call)
            depth_call += call
        elif tok.kind in (RPAREN, RBRACK):
            if stack:
                depth_call -= stack.pop()
        elif depth_call > 0:
            if tok.kind == OP and tok.text == "^":
                piece = "**"
            elif tok.kind == NAME and tok.text in _PY_WORDS:
                piece = _PY_WORDS[tok.text]
        out.append(piece)
        pos = tok.end
    out.append(text[pos:])
    return "".join(out)


def r_deparse(expr: str) -> str:
    """Write a (formulaic/Python or R) expression the way R's ``deparse()`` prints it.

    ``**`` is written ``^``; ``+ - * == <`` ... get a space on each side, ``^ : /`` none,
    arguments are separated by ``", "``. Simple names are returned unchanged.

    Example:
        >>> r_deparse("np.log(x+1)")
        'np.log(x + 1)'
        >>> r_deparse("scale(HEIGHT, center=False)")
        'scale(HEIGHT, center = FALSE)'
    """
    try:
        tokens = tokenize(expr)
    except Exception:  # not something R would print differently
        return expr
    if len(tokens) <= 1:
        return tokens[0].text if tokens else expr
    out: list[str] = []
    prev: Token | None = None
    for tok in tokens:
        text = tok.text
        if tok.kind == OP:
            text = "^" if text == "**" else text
            unary = prev is None or prev.kind in (OP, LPAREN, LBRACK, COMMA)
            if unary or text in _TIGHT:
                out.append(text)
            else:
                out.append(f" {text} ")
        elif tok.kind == COMMA:
            out.append(", ")
        elif tok.kind == NAME:
            out.append(_R_WORDS.get(text, text))
        elif tok.kind in (NUMBER, STRING, LPAREN, RPAREN, LBRACK, RBRACK):
            out.append(text)
        else:
            out.append(f" {text} ")
        prev = tok
    return "".join(out).strip()
