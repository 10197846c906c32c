"""jaxmm's exception and warning types.

Every problem jaxmm detects in a user's input is raised as a subclass of ``JaxmmError``
with a message that names the column, term or argument and says what to do.

Example:
    >>> import jaxmm
    >>> try:
    ...     jaxmm.datasets.load("sleepstudyy")
    ... except jaxmm.JaxmmError as e:
    ...     print(type(e).__name__)
    DataError
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
