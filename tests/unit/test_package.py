"""The extension zip, built by Blender's own builder: small, and nothing in it but what runs."""

from __future__ import annotations

import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ("blender", "formats", "jobs", "net", "operators", "panels", "providers")
TOP_FILES = {"__init__.py", "cli.py", "preferences.py", "blender_manifest.toml"}
# Only source ships; this cap catches a binary or a data file slipping back in (the README's
# 400 kB screenshot once did). The zip was 278 kB of compressed Python at the 2026-12 stop.
MAX_BYTES = 300_000


def test_the_zip_ships_only_what_runs_and_all_of_it(extension_zip: Path) -> None:
    size = extension_zip.stat().st_size
    assert size < MAX_BYTES, f"{size:,} bytes"
    names = set(zipfile.ZipFile(extension_zip).namelist())
    strays = sorted(n for n in names if n not in TOP_FILES and not (
        n.split("/")[0] in RUNTIME and n.endswith(".py")))
    assert strays == [], strays  # no docs, farm, tests, bench, tools, demo, .git, README…
    wanted = {str(p.relative_to(ROOT)) for pkg in RUNTIME for p in (ROOT / pkg).rglob("*.py")
              if "__pycache__" not in p.parts} | TOP_FILES
    assert wanted - names == set()  # every module the extension imports is inside


def test_the_manifest_points_at_the_listing() -> None:
    manifest = tomllib.loads((ROOT / "blender_manifest.toml").read_text(encoding="utf-8"))
    assert manifest["website"] == "https://extensions.blender.org/add-ons/text-to-texture/"
    excluded = manifest["build"]["paths_exclude_pattern"]
    for folder in ("/docs/", "/farm/", "/tests/", "/bench/", "/demo/", "/tools/"):
        assert folder in excluded
