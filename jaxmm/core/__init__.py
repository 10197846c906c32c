"""Pure JAX, no pandas, no mutation: the blocked factorization and the profiled criterion.

    layout.py    static shapes (Layout) and the crossproduct pytree (Blocks)
    small.py     closed-form batched tiny Choleskys (term 1)
    blocked.py   term-1 elimination and the sparse Schur update of the rest block
    logchol.py   weighted log-diagonal of the dense Cholesky with a cheap exact derivative
    objective.py the REML criterion / ML deviance of theta
    solve.py     beta, u and the factor at a given theta
    devfun.py    lme4's devFunOnly wrapper
"""

from .devfun import DevFun
from .layout import Blocks, Layout, RestTerm, split_theta, with_response
from .objective import hessian, objective, objective_jit, value_and_grad
from .solve import Estimates, estimates

__all__ = [
    "DevFun", "Blocks", "Layout", "RestTerm", "split_theta", "with_response",
    "objective", "objective_jit", "value_and_grad", "hessian", "Estimates", "estimates",
]
