"""Make ``jaxmm`` available to the doctests in the package's docstrings."""

import pytest


@pytest.fixture(autouse=True)
def _doctest_namespace(doctest_namespace):
    import jaxmm

    doctest_namespace["jaxmm"] = jaxmm
