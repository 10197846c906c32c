"""Parse an lme4 formula: ``response ~ fixed + (lhs | group) + ...``.

The random-effects terms are pulled out of the right-hand side before anything reaches
formulaic (where ``|`` would split the formula into parts), then expanded as lme4 does.

Example:
    >>> f = parse_formula("Reaction ~ Days + (Days | Subject)")
    >>> f.response, f.fixed, f.random[0].lhs, f.random[0].group
    ('Reaction', '1 + Days', 'Days', 'Subject')
"""

from __future__ import annotations

from functools import lru_cache

from ..errors import FormulaError, ModelError
from .expand import expand_bar
from .simple import parse_simple
from .terms import ParsedFormula, RandomTerm
from .tokens import BAR, DBAR, LBRACK, LPAREN, NAME, NUMBER, OP, RBRACK, RPAREN, TILDE, Token
from .tokens import formula_error, match_parens, tokenize
from .translate import to_formulaic

__all__ = ["parse_formula"]

_EXAMPLE = "'y ~ x + (1 | group)'"


def _depths(tokens: list[Token]) -> list[int]:
    """Parenthesis depth of each token (the brackets themselves count as outside)."""
    out, depth = [], 0
    for tok in tokens:
        if tok.kind in (RPAREN, RBRACK):
            depth -= 1
        out.append(depth)
        if tok.kind in (LPAREN, LBRACK):
            depth += 1
    return out


@lru_cache(maxsize=512)
def _formulaic_parses(part: str) -> bool:
    """formulaic accepts this formula part (raises its error otherwise; successes cached)."""
    from formulaic import Formula

    Formula(part)
    return True


def _check_formulaic(text: str, part: str, where: int, source: str) -> None:
    """Let formulaic's parser vet a translated formula part (a simple part is valid and
    needs no formulaic); report at ``where``."""
    if parse_simple(part) is not None:
        return
    try:
        _formulaic_parses(part)
    except Exception as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise formula_error(text, where, f"cannot parse {source} {part!r} ({msg})") from e


def _split_summands(text: str, tokens: list[Token], depth: list[int], lo: int, hi: int
                    ) -> list[tuple[str, int, int]]:
    """Split tokens[lo:hi] at depth-0 ``+``/``-`` into (sign, first, end) summands."""
    out: list[tuple[str, int, int]] = []
    sign, start, last_op = "+", lo, None
    for k in range(lo, hi + 1):
        at_end = k == hi
        tok = tokens[k] if not at_end else None
        if at_end or (tok.kind == OP and tok.text in "+-" and depth[k] == depth[lo]):
            if k > start:
                out.append((sign, start, k))
                sign, last_op = "+", None
            elif at_end:
                pos = tokens[last_op].start if last_op is not None else len(text.rstrip())
                raise formula_error(text, pos, "empty term: an operator is not followed by a term")
            elif last_op is not None and tok.text == "+" and tokens[last_op].text == "+":
                raise formula_error(text, tok.start, "empty term between '+' and '+'")
            if not at_end:
                if tok.text == "-":
                    sign = "-"
                last_op, start = k, k + 1
    return out


def _bar_term(text: str, tokens: list[Token], depth: list[int], pairs: dict[int, int],
              sign: str, a: int, b: int) -> list[RandomTerm]:
    """Read the summand tokens[a:b], known to contain a bar, as ``(lhs | group)``."""
    bars = [k for k in range(a, b) if tokens[k].kind in (BAR, DBAR)]
    # unwrap redundant parentheses: ((1 | g)) is (1 | g)
    while tokens[a].kind == LPAREN and pairs.get(a) == b - 1 and not (
            a > 0 and tokens[a - 1].kind == NAME):
        inner = [k for k in bars if depth[k] == depth[a] + 1]
        if inner:
            break
        a, b = a + 1, b - 1
    if not (tokens[a].kind == LPAREN and pairs.get(a) == b - 1):
        raise formula_error(
            text, tokens[bars[0]].start,
            "a random-effects term must be a separate term in parentheses, like (1 | group)")
    if sign == "-":
        raise formula_error(text, tokens[a].start, "a random-effects term cannot be removed with '-'")
    top = [k for k in bars if depth[k] == depth[a] + 1]
    if len(top) != 1 or len(top) != len(bars):
        where = tokens[(top[1:] or [k for k in bars if k not in top])[0]].start
        raise formula_error(text, where, "a random-effects term must contain exactly one '|' or '||'")
    bar, close = top[0], b - 1
    if bar == a + 1:
        raise formula_error(text, tokens[bar].start,
                            "random-effects term without a left-hand side; use (1 | group) "
                            "for a random intercept")
    if close == bar + 1:
        raise formula_error(text, tokens[close].start,
                            "random-effects term without a grouping factor after "
                            f"{tokens[bar].text!r}")
    lhs_raw = text[tokens[a + 1].start:tokens[bar].start]
    group = text[tokens[bar + 1].start:tokens[close].start]
    lhs = " ".join(to_formulaic(lhs_raw).split())
    _check_formulaic(text, lhs, tokens[a + 1].start, "the random-effects term's left-hand side")
    try:
        return expand_bar(lhs, group, double=tokens[bar].kind == DBAR)
    except FormulaError as e:
        where = tokens[bar + 1].start + getattr(e, "offset", 0)
        raise formula_error(text, where, str(e)) from e


def _check_unsupported(text: str, tokens: list[Token], lo: int, hi: int) -> None:
    for k in range(lo, hi):
        tok = tokens[k]
        if tok.kind == NAME and tok.text == ".":
            raise formula_error(text, tok.start, "'.' (all other columns) is not supported; "
                                "name the columns")
        if tok.kind == NAME and tok.text == "offset" and k + 1 < hi and tokens[k + 1].kind == LPAREN:
            raise formula_error(text, tok.start, "offset() terms are not supported yet")


def parse_formula(text: str) -> ParsedFormula:
    """Parse an lme4 model formula.

    Supports ``(1|g)``, ``(x|g)``, ``(0+x|g)``, ``(x-1|g)``, ``(x||g)``, ``(1|a/b)``,
    ``(1|a:b)`` and any fixed part formulaic understands with R's meaning (``a*b``,
    ``I(x^2)``, ``scale(x)``, ``log(x)``, ``-1``, ``0 +``).

    Raises:
        FormulaError: on syntax errors; the message shows the column and a caret.
        ModelError: if the formula has no random-effects term.

    Example:
        >>> f = parse_formula("strength ~ 1 + (1 | batch/cask)")
        >>> [(t.lhs, t.group, t.group_factors) for t in f.random]
        [('1', 'cask:batch', ('cask', 'batch')), ('1', 'batch', ('batch',))]
    """
    if not isinstance(text, str):
        raise FormulaError(f"the formula must be a string like {_EXAMPLE}, got {type(text).__name__}")
    return _parse(text)


@lru_cache(maxsize=256)
def _parse(text: str) -> ParsedFormula:
    """:func:`parse_formula`, cached by the formula text (the result is immutable; errors are
    raised again on each call since they are not cached)."""
    if not text.strip():
        raise FormulaError(f"the formula is empty; write it like {_EXAMPLE}")
    tokens = tokenize(text)
    pairs = match_parens(text, tokens)
    depth = _depths(tokens)
    tildes = [k for k, t in enumerate(tokens) if t.kind == TILDE]
    if not tildes:
        raise formula_error(text, tokens[0].start,
                            f"missing '~' between the response and the terms; write {_EXAMPLE}")
    if depth[tildes[0]] != 0 or len(tildes) > 1:
        k = tildes[0] if depth[tildes[0]] != 0 else tildes[1]
        raise formula_error(text, tokens[k].start, "unexpected '~': a formula has exactly one")
    t = tildes[0]
    if t == 0:
        raise formula_error(text, tokens[0].start, "missing response before '~'")
    if t == len(tokens) - 1:
        raise formula_error(text, tokens[t].end, "missing terms after '~'")
    for k in range(t):
        if tokens[k].kind in (BAR, DBAR):
            raise formula_error(text, tokens[k].start, "'|' is not allowed in the response")
    response = text[tokens[0].start:tokens[t - 1].end].strip()
    _check_unsupported(text, tokens, t + 1, len(tokens))

    fixed_parts: list[str] = []
    random: list[RandomTerm] = []
    explicit_intercept = False
    for sign, a, b in _split_summands(text, tokens, depth, t + 1, len(tokens)):
        if any(tokens[k].kind in (BAR, DBAR) for k in range(a, b)):
            random.extend(_bar_term(text, tokens, depth, pairs, sign, a, b))
            continue
        if b - a == 1 and tokens[a].kind == NUMBER and tokens[a].text in ("0", "1"):
            explicit_intercept = True
        piece = to_formulaic(text[tokens[a].start:tokens[b - 1].end])
        if not fixed_parts:
            fixed_parts.append(piece if sign == "+" else f"-{piece}")
        else:
            fixed_parts.append(f"{sign} {piece}")
    if not random:
        raise ModelError(
            f"the formula {text.strip()!r} has no random-effects terms; jaxmm fits mixed models. "
            "For a model without random effects use an ordinary linear model (e.g. statsmodels "
            "OLS), or add a term like (1 | group)."
        )
    fixed = " ".join(fixed_parts) if fixed_parts else "1"
    if fixed_parts and not explicit_intercept:
        fixed = f"1 + {fixed}"
    _check_formulaic(text, fixed, tokens[t + 1].start, "the fixed-effects part")
    return ParsedFormula(text=text, response=response, fixed=fixed, random=tuple(random))
