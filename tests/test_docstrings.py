"""Every public function, class, method and property has a docstring with a runnable
example (a ``>>>`` line). The examples themselves run as doctests (``--doctest-modules``);
this test only checks that none is missing, and lists the offenders when some are.

The public API enumerated here:

* the functions and classes in ``jaxmm.__all__``;
* the public methods and properties of ``LinearMixedModel`` and
  ``GeneralizedLinearMixedModel`` (the examples use the fits ``m`` and ``g`` that the root
  conftest.py puts in the doctest namespace);
* the functions and classes in ``__all__`` of ``jaxmm.functional``, ``jaxmm.plots``,
  ``jaxmm.inference`` and ``jaxmm.datasets``;
* the exception and warning classes of ``jaxmm.errors``.
"""

from __future__ import annotations

import inspect
from functools import cached_property

import jaxmm
import jaxmm.datasets
import jaxmm.errors
import jaxmm.functional
import jaxmm.inference
import jaxmm.plots

# Exempt on purpose, with the reason (keyed by object: ``jaxmm.DataError`` and
# ``jaxmm.errors.DataError`` are one class). The exception and warning classes are one-line
# markers; the errors module docstring lists them all and shows them raised and caught (a
# doctest there), which test_the_exempt_errors_are_shown_in_the_errors_module checks.
ERRORS_MODULE_EXAMPLE = "covered by the jaxmm.errors module docstring's examples"
EXEMPT: dict[object, str] = {
    obj: ERRORS_MODULE_EXAMPLE
    for obj in vars(jaxmm.errors).values()
    if inspect.isclass(obj) and issubclass(obj, (Exception, Warning))
    and obj.__module__ == jaxmm.errors.__name__
}

MODEL_CLASSES = (jaxmm.LinearMixedModel, jaxmm.GeneralizedLinearMixedModel)
SUBMODULES = (jaxmm.functional, jaxmm.plots, jaxmm.inference, jaxmm.datasets)


def _members_of(cls) -> dict[str, object]:
    """Public methods and properties defined on ``cls`` or its jaxmm mixins (not ``object``)."""
    out = {}
    members: dict[str, object] = {}
    for klass in reversed(cls.__mro__[:-1]):  # subclasses override their bases
        members.update(vars(klass))
    for name, attr in members.items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (property, cached_property, staticmethod, classmethod)) \
                or inspect.isfunction(attr):
            out[f"{cls.__module__}.{cls.__qualname__}.{name}"] = attr
    return out


def public_api() -> dict[str, object]:
    """Qualified name -> object, for everything that must carry an example."""
    api: dict[str, object] = {}
    for module in (jaxmm, *SUBMODULES):
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                api[f"{module.__name__}.{name}"] = obj
    for cls in MODEL_CLASSES:
        api.update(_members_of(cls))
    for name, obj in vars(jaxmm.errors).items():
        if inspect.isclass(obj) and obj.__module__ == jaxmm.errors.__name__:
            api[f"jaxmm.errors.{name}"] = obj
    return api


def _doc(obj) -> str:
    if isinstance(obj, (staticmethod, classmethod)):
        obj = obj.__func__
    return getattr(obj, "__doc__", None) or ""


def _exempt(obj) -> bool:
    try:
        return obj in EXEMPT
    except TypeError:  # unhashable
        return False


def test_the_api_is_enumerated():
    api = public_api()
    # a sanity floor, so that a broken enumeration cannot pass vacuously
    assert len(api) > 100
    assert "jaxmm.results.lmm.LinearMixedModel.fixef" in api
    assert "jaxmm.results.glmm.GeneralizedLinearMixedModel.predict" in api
    assert "jaxmm.functional.fit" in api


def test_every_public_item_has_a_docstring_example():
    missing = sorted(
        name for name, obj in public_api().items()
        if not _exempt(obj) and ">>>" not in _doc(obj)
    )
    assert not missing, (
        f"{len(missing)} public items have no docstring example (>>>):\n  " + "\n  ".join(missing)
    )


def test_the_exempt_errors_are_shown_in_the_errors_module():
    doc = jaxmm.errors.__doc__
    assert len(EXEMPT) >= 10 and ">>>" in doc
    # every exempt class is listed there, and the main ones are raised in its doctest
    unlisted = sorted(cls.__name__ for cls in EXEMPT if cls.__name__ not in doc)
    assert not unlisted, f"not listed in the jaxmm.errors docstring: {unlisted}"
    examples = doc[doc.index(">>>"):]
    for name in ("DataError", "FormulaError", "ColumnNotFoundError", "SingularFitWarning"):
        assert name in examples, name
