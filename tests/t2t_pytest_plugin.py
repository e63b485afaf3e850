"""A pytest plugin (loaded with -p from pyproject).

The repository root is the extension package itself (it has `__init__.py`), which would make
pytest import it as a package before any test and without bpy. Collect it as a plain folder."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if path == ROOT:
        return pytest.Dir.from_parent(parent, path=path)
    return None
