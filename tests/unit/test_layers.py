"""The layers point one way, and the ones below Blender never import it.

Read from the source (no module is run): every module of `jobs/`, `providers/`, `formats/` and
`net/` is parsed and each of its imports checked, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BPY_FREE = ("jobs", "providers", "formats", "net")
BLENDER_MODULES = {"bpy", "bmesh", "mathutils", "gpu", "bpy_extras", "_bpy"}
# What each layer may import from the extension itself (layers only point down).
ALLOWED = {
    "jobs": {"jobs", "providers", "formats", "net"},
    "providers": {"providers", "formats", "net"},
    "formats": {"formats"},
    "net": {"net", "formats"},
}


def _modules(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, absolute dotted name inside the package or outside it) for every import."""
    package = path.relative_to(ROOT).with_suffix("").parts
    if package[-1] == "__init__":
        package = package[:-1]
    here = package if path.name == "__init__.py" else package[:-1]
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                name = ".".join(("text_to_texture", *base, *filter(None, [node.module])))
                found.append((node.lineno, name))
                found += [(node.lineno, f"{name}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, node.module or ""))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant)):
            found.append((node.lineno, str(node.args[0].value)))
    return found


@pytest.mark.parametrize("layer", BPY_FREE)
def test_no_module_below_blender_imports_blender(layer: str) -> None:
    modules = _modules(layer)
    assert modules, f"{layer}/ has no modules"
    bad = [f"{p.relative_to(ROOT)}:{line} imports {name}" for p in modules
           for line, name in _imports(p) if name.split(".")[0] in BLENDER_MODULES]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("layer", BPY_FREE)
def test_layers_only_point_down(layer: str) -> None:
    bad = []
    for path in _modules(layer):
        for line, name in _imports(path):
            parts = name.split(".")
            if parts[0] != "text_to_texture" or len(parts) < 2:
                continue
            if parts[1] not in ALLOWED[layer]:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    """The walk above must be able to fail: a module importing bpy inside a function, and one
    reaching up a layer with a relative import, are both found."""
    layer = ROOT / "net"
    probe = layer / "_probe_layers_test.py"
    probe.write_text("def f():\n    import bpy\n\nfrom ..providers import base\n")
    try:
        names = [name for _, name in _imports(probe)]
    finally:
        probe.unlink()
    assert "bpy" in names
    assert "text_to_texture.providers" in names
