"""The README's Python code blocks run, in order, in one namespace."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"


def blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    code = blocks()
    assert len(code) >= 4
    ns: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, block in enumerate(code):
            try:
                exec(compile(block, f"README block {i + 1}", "exec"), ns)
            except Exception as e:  # name the block that failed
                raise AssertionError(f"README python block {i + 1} failed: {e!r}\n{block}") from e
