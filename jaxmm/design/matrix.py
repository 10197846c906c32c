"""Materialize one formula part (fixed effects, or a random term's left-hand side) with
R's rules, returning the matrix, R's column names and the formulaic ``ModelSpec`` that
rebuilds it on new data.

Simple parts (sums of products of bare column names, see :mod:`jaxmm.design.simple`) are
built with NumPy and their ``ModelSpec`` is computed by formulaic only when first asked
for; everything else goes through formulaic with :class:`RMaterializer`. formulaic is
imported only when used.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0], "g": pd.Categorical(["a", "b", "a"])})
    >>> b = materialize("1 + x + g", df)
    >>> b.names, b.matrix.shape, block_levels(b)
    (('(Intercept)', 'x', 'gb'), (3, 3), {'g': (('a', 'b'), False)})
"""

from __future__ import annotations

from functools import lru_cache

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.simple import parse_simple
from .naming import categorical_levels, r_column_names
from .simple import build_simple

__all__ = ["Block", "LazySpec", "materialize", "materialize_formulaic", "part_key",
           "rematerialize", "resolve_spec", "block_levels", "variable_order",
           "required_columns"]


class LazySpec:
    """formulaic's ``ModelSpec`` of a part built without formulaic: formulaic runs on the
    same frame, as :func:`materialize_formulaic` would have, when it is first needed.

    Example:
        >>> df = pd.DataFrame({"x": [1.0, 2.0]})
        >>> ref = materialize("1 + x", df).spec_ref
        >>> type(ref).__name__, [str(t) for t in ref.get().formula]
        ('LazySpec', ['1', 'x'])
    """

    __slots__ = ("_rhs", "_frame", "_spec")

    def __init__(self, rhs: str, frame: pd.DataFrame):
        self._rhs, self._frame, self._spec = rhs, frame, None

    def get(self) -> Any:
        """The ``ModelSpec`` (computed once; the frame is then let go)."""
        if self._frame is not None:
            self._spec = materialize_formulaic(self._rhs, self._frame).spec
            self._frame = None
        return self._spec


def resolve_spec(ref: Any) -> Any:
    """A ``ModelSpec`` (or None) from a spec or a :class:`LazySpec`.

    Example:
        >>> resolve_spec(None) is None
        True
    """
    return ref.get() if isinstance(ref, LazySpec) else ref


@dataclass(frozen=True, eq=False)
class Block:
    """A materialized formula part.

    Attributes:
        matrix: float64 (n, k).
        names: R's column names.
        spec_ref: formulaic's ``ModelSpec``, a :class:`LazySpec` for simple parts, or
            ``None`` for the intercept-only shortcut; read it as ``spec``.
        levels: levels and ordered flag of each factor, when known without the spec.
    """

    matrix: np.ndarray
    names: tuple[str, ...]
    spec_ref: Any
    levels: dict[str, tuple[tuple[str, ...], bool]] | None = None

    @property
    def spec(self) -> Any:
        """formulaic's ``ModelSpec`` (``None`` for the intercept-only shortcut)."""
        return resolve_spec(self.spec_ref)


def block_levels(block: Block) -> dict[str, tuple[tuple[str, ...], bool]]:
    """Levels and ordered flag of each factor of a block (``categorical_levels`` of its
    spec), without running formulaic for simple parts.

    Example:
        >>> block_levels(materialize("1", pd.DataFrame({"x": [1.0]})))
        {}
    """
    if block.levels is not None:
        return block.levels
    spec = block.spec
    return categorical_levels(spec) if spec is not None else {}


@lru_cache(maxsize=512)
def _formula(rhs: str, ordering: str = "degree") -> Any:
    """formulaic's (immutable) parsed formula, cached: parsing dominates small designs."""
    from formulaic import Formula

    try:
        return Formula(rhs, _ordering=ordering)
    except Exception as e:
        raise FormulaError(f"cannot parse {rhs!r}: {e}") from e


def variable_order(rhs: str) -> tuple[str, ...]:
    """Factor expressions in order of first appearance (R's ``variables`` order).

    Example:
        >>> variable_order("1 + a + b + b:a + c:a")
        ('a', 'b', 'c')
    """
    simple = parse_simple(rhs)
    if simple is not None:
        return simple.variables
    order: dict[str, None] = {}
    for term in _formula(rhs, ordering="none"):
        for factor in term.factors:
            if factor.expr not in ("1", "0"):
                order.setdefault(factor.expr)
    return tuple(order)


_CONSTANTS = {"pi", "inf", "True", "False", "None"}


def _names_in(expr: str) -> list[str]:
    """Variables read by a Python expression: names not called and not module roots."""
    import ast

    try:
        tree = ast.parse(expr, mode="eval")
    except SyntaxError:
        return [expr]
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            skip.add(id(node.func))
        elif isinstance(node, ast.Attribute):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            skip.add(id(root))
    names = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in skip]
    return [n.id for n in sorted(names, key=lambda n: n.col_offset)]


def required_columns(rhs: str) -> list[str]:
    """Data variables a formula part reads, in order of appearance: not functions
    (``log``), modules (``np.``) or constants (``pi``).

    Example:
        >>> required_columns("1 + log(x) + I(z**2) + scale(w) + x:v")
        ['x', 'z', 'w', 'v']
    """
    simple = parse_simple(rhs)
    return list(simple.variables if simple is not None else _required_columns(rhs))


@lru_cache(maxsize=512)
def _required_columns(rhs: str) -> tuple[str, ...]:
    """formulaic's route of :func:`required_columns`."""
    out: dict[str, None] = {}
    for term in _formula(rhs, ordering="none"):
        for factor in term.factors:
            method = factor.eval_method.value
            if method == "lookup":
                out.setdefault(factor.expr)
            elif method == "python":
                for name in _names_in(factor.expr):
                    if name not in _CONSTANTS:
                        out.setdefault(name)
    return tuple(out)


def part_key(rhs: str) -> tuple:
    """Two formula parts with equal keys give the same model matrix on the same data:
    formulaic's terms (``"Days"`` and ``"1 + Days"`` are the same) and R's variable order.

    Example:
        >>> part_key("Days") == part_key("1 + Days") != part_key("0 + Days")
        True
    """
    if " ".join(rhs.split()) in ("1", "1 + 1"):
        return ("1",)
    simple = parse_simple(rhs)
    if simple is not None:
        return simple.labels, simple.variables
    return _part_key(rhs)


@lru_cache(maxsize=512)
def _part_key(rhs: str) -> tuple:
    """formulaic's route of :func:`part_key`."""
    return tuple(str(term) for term in _formula(rhs)), variable_order(rhs)


def _run(rhs_or_spec: Any, frame: pd.DataFrame, order: tuple[str, ...]) -> Any:
    from .materializer import RMaterializer
    from .transforms import CONTEXT

    mat = RMaterializer(frame, context=CONTEXT, variable_order=order)
    try:
        with np.errstate(all="ignore"):  # non-finite results are reported by the caller
            return mat.get_model_matrix(rhs_or_spec, output="numpy", na_action="ignore")
    except (DataError, FormulaError):
        raise
    except Exception as e:
        raise DataError(f"cannot evaluate the formula terms {str(rhs_or_spec)!r}: {e}") from e


def materialize(rhs: str, frame: pd.DataFrame,
                full_frame: Callable[[], pd.DataFrame] | None = None) -> Block:
    """Build the model matrix of ``rhs`` (formulaic syntax) on the cleaned ``frame``.

    Stateful transforms (``scale(x)``, ``poly(x, 2)``) learn their state from
    ``full_frame()`` if given: R evaluates them before dropping incomplete rows.
    Simple parts are built without formulaic (see the module docstring).
    """
    if " ".join(rhs.split()) in ("1", "1 + 1"):
        return Block(np.ones((len(frame), 1)), ("(Intercept)",), None)
    simple = build_simple(rhs, frame)
    if simple is not None:
        return Block(simple.matrix, simple.names, LazySpec(rhs, frame), simple.levels)
    return materialize_formulaic(rhs, frame, full_frame)


def materialize_formulaic(rhs: str, frame: pd.DataFrame,
                          full_frame: Callable[[], pd.DataFrame] | None = None) -> Block:
    """:func:`materialize` through formulaic, whatever ``rhs`` is (no shortcuts).

    Example:
        >>> df = pd.DataFrame({"x": [1.0, 4.0]})
        >>> materialize_formulaic("0 + x", df).names
        ('x',)
    """
    n = len(frame)
    from formulaic import ModelSpec

    formula = _formula(rhs)
    order = variable_order(rhs)
    mm = _run(formula, frame, order)
    if mm.model_spec.transform_state and full_frame is not None:
        try:
            state = _run(formula, full_frame(), order).model_spec.transform_state
        except DataError:  # the full data cannot be evaluated: keep the complete rows' state
            state = None
        if state is not None:
            mm = _run(ModelSpec.from_spec(formula, transform_state=state), frame, order)
    spec = mm.model_spec
    matrix = np.ascontiguousarray(np.asarray(mm, dtype=np.float64).reshape(n, -1))
    return Block(matrix, tuple(r_column_names(spec)), spec)


def rematerialize(block_spec: Any, frame: pd.DataFrame) -> np.ndarray:
    """The same columns as a ``Block`` with ``block_spec``, on new (cleaned) data."""
    n = len(frame)
    if block_spec is None:
        return np.ones((n, 1))
    from .materializer import RMaterializer
    from .transforms import CONTEXT

    mat = RMaterializer(frame, context=CONTEXT, **(block_spec.materializer_params or {}))
    try:
        mm = mat.get_model_matrix(block_spec, output="numpy", na_action="ignore")
    except Exception as e:
        raise DataError(f"cannot build the model matrix on the new data: {e}") from e
    return np.ascontiguousarray(np.asarray(mm, dtype=np.float64).reshape(n, -1))
