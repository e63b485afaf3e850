"""Test set-up shared by the whole suite.

* Pure tests import the repository as the package `text_to_texture` without running its
  `__init__.py` (which needs bpy), so `jobs/` and `providers/` are tested as plain Python.
* Blender tests use the extension the way an artist's Blender has it: the zip built by Blender's
  own builder, installed with `bpy.ops.extensions.package_install_files` into a throwaway
  `BLENDER_USER_RESOURCES`, and enabled. Every Blender test starts from a fresh home file.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SCRATCH = Path(tempfile.mkdtemp(prefix="t2t-tests-"))
# Must be set before bpy is first imported: Blender reads them at start-up.
os.environ["BLENDER_USER_RESOURCES"] = str(_SCRATCH / "blender-user")
os.environ["TEXT_TO_TEXTURE_DATA_DIR"] = str(_SCRATCH / "t2t-data")
for var in [v for v in os.environ if v.endswith(("_API_KEY", "_API_BASE", "_API_SECRET"))]:
    del os.environ[var]  # a developer's real keys must never reach a test


sys.path.insert(0, str(ROOT / "tools"))
import ext_dev  # noqa: E402

ext_dev.use_source_package()


@pytest.fixture(scope="session")
def extension_zip() -> Path:
    return ext_dev.build_zip(_SCRATCH / "dist")


@pytest.fixture(scope="session")
def t2t(extension_zip: Path):  # type: ignore[no-untyped-def]
    """The installed, enabled extension's root module."""
    module = ext_dev.install(extension_zip)
    assert Path(module.__file__).is_relative_to(_SCRATCH), "must be the installed copy"
    return module


@pytest.fixture()
def blender(t2t, tmp_path):  # type: ignore[no-untyped-def]
    """A clean Blender session (empty home file, fresh engine) with the extension enabled."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    yield bpy
    ext_dev.installed("blender.engine").reset_engine()


@pytest.fixture()
def data_dir() -> Path:
    return Path(os.environ["TEXT_TO_TEXTURE_DATA_DIR"])
