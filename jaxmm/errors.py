"""jaxmm's exception and warning types.

Every problem jaxmm detects in a user's input is raised as a subclass of ``JaxmmError``
with a message that names the column, term or argument and says what to do.

The classes (all exported as ``jaxmm.<name>``):

    JaxmmError                  base of every error
        FormulaError            (also a ValueError) the formula cannot be parsed
        DataError               (also a ValueError) the data do not fit the formula
            ColumnNotFoundError (also a KeyError) a column named in the formula is missing
        ModelError              (also a ValueError) the model is not estimable as specified
        ConvergenceError        (also a RuntimeError) no usable estimate
    JaxmmWarning                base of every warning (a UserWarning)
        ConvergenceWarning      the optimizer stopped without meeting the checks
        SingularFitWarning      a boundary (singular) fit
        RankDeficiencyWarning   aliased fixed-effects columns were dropped
        DroppedRowsWarning      rows with missing values were dropped

These classes are one-line markers; the examples below (doctested) show them raised and
caught, in place of an example in each class's docstring.

Example:
    >>> import jaxmm, warnings
    >>> try:
    ...     jaxmm.datasets.load("sleepstudyy")
    ... except jaxmm.JaxmmError as e:
    ...     print(type(e).__name__)
    DataError
    >>> try:
    ...     jaxmm.parse_formula("Reaction ~ Days + (Days|")
    ... except jaxmm.FormulaError as e:
    ...     print(str(e).splitlines()[0])
    unbalanced parenthesis: '(' is never closed at column 19:
    >>> try:
    ...     jaxmm.lmer("Reaction ~ Dayz + (1|Subject)", jaxmm.datasets.load("sleepstudy"))
    ... except KeyError as e:   # a ColumnNotFoundError is also a KeyError and a DataError
    ...     print(type(e).__name__, "-", e)
    ColumnNotFoundError - column 'Dayz' not found; did you mean 'Days'? (used as a fixed effect)
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     fit = jaxmm.lmer("Yield ~ 1 + (1|Batch)", jaxmm.datasets.load("Dyestuff2"))
    >>> [w.category.__name__ for w in caught], fit.is_singular
    (['SingularFitWarning'], True)
    >>> issubclass(jaxmm.SingularFitWarning, jaxmm.JaxmmWarning)
    True
"""

from __future__ import annotations


class JaxmmError(Exception):
    """Base class of every error jaxmm raises on bad input or an impossible fit."""


class FormulaError(JaxmmError, ValueError):
    """The model formula cannot be parsed or does not describe a valid mixed model."""


class DataError(JaxmmError, ValueError):
    """The data do not fit the formula: missing columns, wrong types, non-finite values..."""


class ColumnNotFoundError(DataError, KeyError):
    """A column named in the formula is not in the data."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ModelError(JaxmmError, ValueError):
    """The model is not estimable as specified (too few levels, too many parameters...)."""


class ConvergenceError(JaxmmError, RuntimeError):
    """The optimizer failed in a way that leaves no usable estimate."""


class JaxmmWarning(UserWarning):
    """Base class of jaxmm's warnings."""


class ConvergenceWarning(JaxmmWarning):
    """The optimizer stopped without meeting the convergence checks."""


class SingularFitWarning(JaxmmWarning):
    """The fit is on the boundary of the parameter space (a variance estimate of zero or a
    correlation of +-1): lme4's "boundary (singular) fit"."""


class RankDeficiencyWarning(JaxmmWarning):
    """The fixed-effects model matrix is rank deficient; aliased columns were dropped."""


class DroppedRowsWarning(JaxmmWarning):
    """Rows with missing values in a used column were dropped (R's na.omit)."""
