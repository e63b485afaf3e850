"""Build the extension zip with Blender's own builder and install it into a throwaway profile.

Used by the tests, the demo and the benchmarks, so all three run the extension the way an
artist's Blender does. Set BLENDER_USER_RESOURCES before calling `install` (Blender reads it
when bpy is first imported).
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
INSTALLED = "bl_ext.user_default.text_to_texture"
_BLENDER_EXT = "scripts/addons_core/bl_pkg/cli/blender_ext.py"  # under bpy/<major.minor>/


def blender_ext_tool() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("bpy")
    assert spec is not None and spec.origin is not None, "bpy is not installed in this Python"
    (tool,) = Path(spec.origin).parent.glob(f"[0-9]*.[0-9]*/{_BLENDER_EXT}")
    return tool


def build_zip(out_dir: Path) -> Path:
    """Validate the manifest, then build `text_to_texture-<version>.zip` into `out_dir`."""
    tool = blender_ext_tool()
    subprocess.run([sys.executable, str(tool), "validate", str(ROOT)], check=True,
                   capture_output=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("text_to_texture-*.zip"):
        old.unlink()
    subprocess.run(
        [sys.executable, str(tool), "build", "--source-dir", str(ROOT), "--output-dir",
         str(out_dir)],
        check=True, capture_output=True,
    )
    (zip_path,) = out_dir.glob("text_to_texture-*.zip")
    return zip_path


def install(zip_path: Path) -> ModuleType:
    """Install and enable the zip in this Blender; return the installed root module."""
    import bpy

    result = bpy.ops.extensions.package_install_files(
        filepath=str(zip_path), repo="user_default", enable_on_install=True
    )
    if result != {"FINISHED"} or INSTALLED not in sys.modules:
        raise RuntimeError(f"installing {zip_path.name} failed: {result}")
    return sys.modules[INSTALLED]


def installed(name: str) -> ModuleType:
    """A submodule of the installed extension, e.g. installed('blender.engine')."""
    return importlib.import_module(f"{INSTALLED}.{name}")


def use_source_package() -> None:
    """Make `import text_to_texture.jobs…` load this checkout without running its
    `__init__.py` (which needs bpy): the pure layers, for tests and benchmarks."""
    import importlib.util

    if "text_to_texture" in sys.modules:
        return
    spec = importlib.util.spec_from_loader("text_to_texture", loader=None, is_package=True)
    assert spec is not None
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(ROOT)]
    sys.modules["text_to_texture"] = package
