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


# Blender as a Python module (bpy 4.2) can crash while the interpreter shuts down after tests
# that ran its glTF exporter (exit code 139 with every test passed). Once the session is over
# and reported, leave with pytest's own status instead of running that teardown.
_exit_status: dict[str, int] = {}


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _exit_status["code"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    import os
    import sys

    if "bpy" in sys.modules and "code" in _exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_exit_status["code"])
