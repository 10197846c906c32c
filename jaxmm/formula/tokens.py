"""Tokenizer for R model formulas, with caret-style error reporting.

The tokenizer knows just enough of R's lexical grammar to find the formula's structure
(``~``, top-level ``+``/``-``, parentheses and ``|`` bars) and to rewrite expressions.

Example:
    >>> [t.text for t in tokenize("y ~ x + (1 | g)")]
    ['y', '~', 'x', '+', '(', '1', '|', 'g', ')']
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import FormulaError

__all__ = ["Token", "tokenize", "formula_error", "match_parens"]

# token kinds
NAME, NUMBER, STRING, OP, LPAREN, RPAREN, LBRACK, RBRACK, COMMA, BAR, DBAR, TILDE = (
    "name", "number", "string", "op", "(", ")", "[", "]", ",", "|", "||", "~",
)

# longest first, so that '**' wins over '*', '<=' over '<' ...
_OPERATORS = ("**", "==", "!=", "<=", ">=", "&&", "<-", "::", "*", "/", "^", ":", "+",
              "-", "<", ">", "!", "&", "=", "$", "@")


@dataclass(frozen=True)
class Token:
    """One lexical token: its kind, its text and its [start, end) span in the formula."""

    kind: str
    text: str
    start: int
    end: int


def formula_error(text: str, pos: int, message: str) -> FormulaError:
    """A ``FormulaError`` whose message shows the formula with a caret under ``pos``.

    The 0-based position is kept on the exception as ``.position``.

    Example:
        >>> print(formula_error("y ~ (x", 4, "unbalanced parenthesis"))
        unbalanced parenthesis at column 5:
          y ~ (x
              ^
    """
    pos = max(0, min(pos, len(text)))
    shown = text.replace("\n", " ").replace("\t", " ")
    err = FormulaError(f"{message} at column {pos + 1}:\n  {shown}\n  {' ' * pos}^")
    err.position = pos  # type: ignore[attr-defined]
    err.formula = text  # type: ignore[attr-defined]
    return err


def _is_name_start(c: str) -> bool:
    return c.isalpha() or c in "._"


def _is_name_char(c: str) -> bool:
    return c.isalnum() or c in "._"


def tokenize(text: str) -> list[Token]:
    """Split R formula text into tokens (whitespace dropped).

    Raises ``FormulaError`` (with the column) on characters R would not accept and on
    unterminated strings or backquoted names.

    Example:
        >>> [t.kind for t in tokenize("(x || g)")]
        ['(', 'name', '||', 'name', ')']
    """
    out: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        start = i
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            i += 1
            while i < n and (text[i].isalnum() or text[i] == "."
                             or (text[i] in "+-" and text[i - 1] in "eE"
                                 and not text[start:i].lower().startswith("0x"))):
                i += 1
            out.append(Token(NUMBER, text[start:i], start, i))
        elif _is_name_start(c):
            i += 1
            while i < n and _is_name_char(text[i]):
                i += 1
            out.append(Token(NAME, text[start:i], start, i))
        elif c in "`'\"":
            j = text.find(c, i + 1)
            while j != -1 and text[j - 1] == "\\":
                j = text.find(c, j + 1)
            if j == -1:
                what = "backquoted name" if c == "`" else "string"
                raise formula_error(text, start, f"unterminated {what}")
            i = j + 1
            out.append(Token(NAME if c == "`" else STRING, text[start:i], start, i))
        elif c == "%":
            j = text.find("%", i + 1)
            if j == -1:
                raise formula_error(text, start, "unterminated %operator%")
            i = j + 1
            out.append(Token(OP, text[start:i], start, i))
        elif c == "|":
            i += 2 if text.startswith("||", i) else 1
            out.append(Token(DBAR if i - start == 2 else BAR, text[start:i], start, i))
        elif c in "()[],~":
            i += 1
            out.append(Token(c, c, start, i))
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    i += len(op)
                    out.append(Token(OP, op, start, i))
                    break
            else:
                raise formula_error(text, start, f"unexpected character {c!r} in formula")
    return out


def match_parens(text: str, tokens: list[Token]) -> dict[int, int]:
    """Map the index of each opening ``(``/``[`` token to the index of its closing one.

    Raises ``FormulaError`` pointing at the first unbalanced parenthesis.

    Example:
        >>> match_parens("(a)", tokenize("(a)"))
        {0: 2}
    """
    pairs: dict[int, int] = {}
    stack: list[int] = []
    closing = {RPAREN: LPAREN, RBRACK: LBRACK}
    for k, tok in enumerate(tokens):
        if tok.kind in (LPAREN, LBRACK):
            stack.append(k)
        elif tok.kind in closing:
            if not stack or tokens[stack[-1]].kind != closing[tok.kind]:
                raise formula_error(text, tok.start, f"unbalanced parenthesis: unmatched {tok.text!r}")
            pairs[stack.pop()] = k
    if stack:
        tok = tokens[stack[-1]]
        raise formula_error(text, tok.start, f"unbalanced parenthesis: {tok.text!r} is never closed")
    return pairs
