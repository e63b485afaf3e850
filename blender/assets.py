"""A library of results: a job's material as an asset in Blender's Asset Browser, with a
preview, tags from the prompt's words and the catalog "Text to Texture/<provider>".

Catalogs are not stored in the .blend: an asset keeps only its catalog's UUID (and a "simple
name" for humans), and the UUID -> path table lives in a catalog definition file,
`blender_assets.cats.txt`, at the root of the asset library. For the "Current File" library
Blender reads and writes the file of the asset library the .blend is saved in (a folder listed
under Preferences > File Paths > Asset Libraries), or, when the .blend is in none, the file
beside the .blend. We write our catalog lines into that same file, merged with what is there,
as Blender does: when the asset is made if the file is saved, else when it is first saved.
Our catalog UUIDs are derived from the catalog path, so the same provider's results land in
the same catalog in every file and library.
"""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path
from typing import Any

import bpy
import numpy as np

from ..formats.atomic import write_atomic
from ..providers.registry import PROVIDERS, label
from . import addon
from .material import BSDF_NODE

log = logging.getLogger(__name__)

CDF_NAME = "blender_assets.cats.txt"
ROOT = "Text to Texture"
# Fixed namespace: uuid5(namespace, catalog path) is the same on every machine.
_NAMESPACE = uuid.UUID("6f1c3a52-5d0e-4b8e-9a57-2f4e1b7c9d10")
_HEADER = (
    "# This is an Asset Catalog Definition file for Blender.\n"
    "#\n"
    "# Empty lines and lines starting with `#` will be ignored.\n"
    "# The first non-ignored line should be the version indicator.\n"
    '# Other lines are of the format "UUID:catalog/path/for/assets:simple catalog name"\n'
    "\n"
    "VERSION 1\n"
    "\n"
)
# Words that say nothing about a surface, left out of the tags.
_STOP = frozenset(
    "a an and or the of with without in on at to for from by as is are be it its this that "
    "very some any no not into onto over under like look looks looking style".split())
MAX_TAGS = 10


def catalog_path(provider_id: str) -> str:
    """"Text to Texture/Meshy": catalog paths take no ':' or backslash."""
    name = re.sub(r"[:/\\]+", " ", label(provider_id)).strip()
    return f"{ROOT}/{name}"


def _our_catalogs() -> dict[str, str]:
    """UUID -> path of every catalog this extension uses."""
    return {catalog_id(catalog_path(pid)): catalog_path(pid) for pid in PROVIDERS}


def catalog_id(path: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, path))


def simple_name(path: str) -> str:
    return path.replace("/", "-")


def tags_of(prompt: str, provider_id: str) -> list[str]:
    """The prompt's meaningful words (lower case, each once, at most `MAX_TAGS`), then the
    provider, so an artist can search the library by what they asked for."""
    words: list[str] = []
    for word in re.findall(r"[^\W\d_][\w'-]*", prompt.lower()):
        word = word.strip("'-")
        if len(word) >= 3 and word not in _STOP and word not in words:
            words.append(word)
    return [*words[:MAX_TAGS], label(provider_id)]


def library_root(blend_path: str) -> Path | None:
    """The folder whose catalog file the "Current File" library of `blend_path` uses: the
    asset library (from the preferences) the file is in, else the file's own folder."""
    if not blend_path:
        return None
    blend = Path(blend_path).resolve()
    for lib in bpy.context.preferences.filepaths.asset_libraries:
        if not lib.path:
            continue
        root = Path(bpy.path.abspath(lib.path)).resolve()
        if blend.is_relative_to(root):
            return root
    return blend.parent


def read_catalogs(cdf: Path) -> dict[str, str]:
    """UUID -> catalog path from a catalog definition file ({} if there is none)."""
    out: dict[str, str] = {}
    try:
        text = cdf.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return out
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("VERSION"):
            continue
        cid, _, rest = line.partition(":")
        path = rest.rpartition(":")[0] if rest.count(":") >= 1 else rest
        out[cid] = path
    return out


def ensure_catalogs(root: Path, paths: list[str]) -> list[str]:
    """Add the catalogs `paths` (and their parents) to `root`'s catalog file, keeping every
    line already there (a backup `~` is kept as Blender does); the paths that were added."""
    cdf = root / CDF_NAME
    known = read_catalogs(cdf)
    wanted: list[str] = []
    for path in paths:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            p = "/".join(parts[:i])
            if p not in wanted:
                wanted.append(p)
    missing = [p for p in wanted if catalog_id(p) not in known and p not in known.values()]
    if not missing:
        return []
    old = cdf.read_text(encoding="utf-8") if cdf.is_file() else ""
    if old:
        write_atomic(root / (CDF_NAME + "~"), old.encode("utf-8"))
    body = old if old.strip() else _HEADER
    if body and not body.endswith("\n"):
        body += "\n"
    body += "".join(f"{catalog_id(p)}:{p}:{simple_name(p)}\n" for p in missing)
    write_atomic(cdf, body.encode("utf-8"))
    return missing


def sync_catalogs(blend_path: str) -> list[str]:
    """After saving `blend_path`: write the catalogs our assets in it use (paths added)."""
    root = library_root(blend_path)
    if root is None:
        return []
    ours = _our_catalogs()
    wanted = sorted({ours[m.asset_data.catalog_id] for m in bpy.data.materials
                     if m.asset_data is not None and m.asset_data.catalog_id in ours})
    if not wanted:
        return []
    try:
        return ensure_catalogs(root, wanted)
    except OSError as exc:  # a read-only folder must not break saving
        log.warning("Text to Texture: could not write %s: %s", root / CDF_NAME, exc)
        return []


def mark(mat: bpy.types.Material, prompt: str, provider_id: str, *,
         write_catalog: bool = True) -> str:
    """Make `mat` an asset in "Text to Texture/<provider>"; "" or one line why not.
    `write_catalog` False leaves the catalog file to the next save (`sync_catalogs`): the
    command line saving a copy elsewhere must not write beside the source file."""
    library: bpy.types.Library | None = mat.library  # None: the file's own (the stubs: never)
    if library is not None:
        return f"'{mat.name}' is linked from another file and cannot become an asset here"
    path = catalog_path(provider_id)
    root = library_root(bpy.data.filepath) if write_catalog else None
    written = ""
    if root is not None:  # first the catalog file, so Blender knows the catalog's id
        try:
            ensure_catalogs(root, [path])
        except OSError as exc:
            written = (f"'{mat.name}' is an asset, but its catalog could not be written to "
                       f"{root / CDF_NAME}: {exc.strerror or exc}")
    mat.asset_mark()
    data = mat.asset_data
    # Blender fills in the catalog's "simple name" itself where it knows the catalog.
    data.catalog_id = catalog_id(path)
    if prompt and not data.description:
        data.description = prompt
    for tag in tags_of(prompt, provider_id):
        data.tags.new(tag, skip_if_exists=True)
    _preview(mat)
    return written


def _preview(mat: bpy.types.Material) -> None:
    """In the interface: Blender's own material preview (a shaded ball, rendered by a
    background job). In background mode that render runs at once and takes seconds per
    material (6-9 s measured with bpy 5.0), too slow for a batch: the base color map, scaled
    down, is the preview instead (and the render is only the fallback without a map)."""
    if not bpy.app.background or not _swatch(mat):
        mat.asset_generate_preview()


def _swatch(mat: bpy.types.Material, side: int = 128) -> bool:
    """The base color map as the preview; False when the material has none."""
    image = _base_color_image(mat)
    if image is None or (not image.has_data and not _load(image)):
        return False
    w, h = image.size
    if not w or not h:
        return False
    px = np.empty(w * h * 4, dtype=np.float32)
    pixels: Any = image.pixels
    pixels.foreach_get(px)
    ys = (np.arange(side) * h // side).clip(0, h - 1)
    xs = (np.arange(side) * w // side).clip(0, w - 1)
    small = px.reshape(h, w, 4)[ys][:, xs]
    small[..., 3] = 1.0
    preview = mat.preview_ensure()
    preview.image_size = (side, side)
    target: Any = preview.image_pixels_float
    target.foreach_set(np.ascontiguousarray(small).ravel())
    return True


def _load(image: bpy.types.Image) -> bool:
    try:
        image.reload()
        return bool(image.has_data or image.size[0])
    except RuntimeError:
        return False


def _base_color_image(mat: bpy.types.Material) -> bpy.types.Image | None:
    tree = mat.node_tree
    bsdf: bpy.types.Node | None = tree.nodes.get(BSDF_NODE) if tree is not None else None
    if bsdf is None or not bsdf.inputs["Base Color"].links:
        return None
    node = bsdf.inputs["Base Color"].links[0].from_node
    return getattr(node, "image", None)


def auto_enabled() -> bool:
    """The preference "Add results to the Asset Browser"."""
    p = addon.prefs()
    return bool(p is not None and getattr(p, "add_to_assets", False))
