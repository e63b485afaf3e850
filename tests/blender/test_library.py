"""A library of results and Recall, through the installed zip: assets with their catalog,
tags and preview, the catalog file where Blender reads it, and a job's settings put back."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from t2t_testing import add_mesh, installed, linked_image, select, set_prompt

PROMPT = "weathered bronze with green patina"


def catalogs(cdf: Path) -> dict[str, str]:
    """UUID -> path, parsed as Blender's format says: `UUID:path:simple name`."""
    out = {}
    for line in cdf.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", "VERSION")):
            cid, path, _simple = line.split(":")
            out[cid] = path
    return out


def texture(bpy: Any, name: str = "Crate") -> Any:
    obj = add_mesh("cube", name)
    select(obj)
    set_prompt(PROMPT, provider="PROCEDURAL", resolution="1024")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    return obj


def only_job(bpy: Any) -> Any:
    (rec,) = bpy.context.scene.text_to_texture.jobs
    return rec


def test_a_result_becomes_an_asset_with_tags_preview_and_catalog(
    blender, tmp_path: Path
) -> None:
    bpy = blender
    obj = texture(bpy)
    rec = only_job(bpy)
    assert bpy.ops.text_to_texture.add_to_assets(job_id=rec.job_id) == {"FINISHED"}
    mat = obj.active_material
    data = mat.asset_data
    assert data is not None
    tags = [t.name for t in data.tags]
    assert tags == ["weathered", "bronze", "green", "patina", "Offline (procedural)"]
    assert data.description == PROMPT
    path = "Text to Texture/Offline (procedural)"
    assert uuid.UUID(data.catalog_id)  # a real UUID
    # In background mode the preview is the base color map, scaled down (a render would take
    # seconds per material): the same pixels at the same places.
    w, h = mat.preview.image_size
    assert (w, h) == (128, 128)
    px = np.empty(w * h * 4, dtype=np.float32)
    mat.preview.image_pixels_float.foreach_get(px)
    px = px.reshape(h, w, 4)
    image = linked_image(mat, "Base Color").image
    iw, ih = image.size
    src = np.empty(iw * ih * 4, dtype=np.float32)
    image.pixels.foreach_get(src)
    src = src.reshape(ih, iw, 4)
    for y, x in ((0, 0), (64, 64), (100, 17), (127, 127)):
        assert np.allclose(px[y, x, :3], src[y * ih // 128, x * iw // 128, :3], atol=0.01)
    assert len({tuple(np.round(px[y, x, :3], 2)) for y in range(0, 128, 16)
                for x in range(0, 128, 16)}) > 4  # a texture, not one flat colour
    # Unsaved: no folder for the catalog file yet. Saving writes it where Blender reads the
    # "Current File" catalogs: beside the .blend when it is in no asset library.
    blend = tmp_path / "shots" / "scene.blend"
    blend.parent.mkdir()
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    cats = catalogs(blend.parent / "blender_assets.cats.txt")
    assert cats[data.catalog_id] == path
    assert "Text to Texture" in cats.values()  # the parent catalog too
    # Reopened: still an asset in the same catalog, which still resolves to the path.
    bpy.ops.wm.open_mainfile(filepath=str(blend))
    mat = bpy.data.objects["Crate"].active_material
    assert catalogs(blend.parent / "blender_assets.cats.txt")[mat.asset_data.catalog_id] == path


def test_inside_an_asset_library_the_library_catalog_file_is_kept_and_extended(
    blender, tmp_path: Path
) -> None:
    bpy = blender
    root = tmp_path / "library"
    (root / "props").mkdir(parents=True)
    cdf = root / "blender_assets.cats.txt"
    theirs = "313ea471-7c81-4de6-af81-fb04c3535d0e:Furniture/Chairs:Furniture-Chairs"
    cdf.write_text(f"# The studio's catalogs\nVERSION 1\n\n{theirs}\n", encoding="utf-8")
    libs = bpy.context.preferences.filepaths.asset_libraries
    lib = libs.new(name="Studio", directory=str(root))
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(root / "props" / "crate.blend"))
        obj = texture(bpy)
        assert bpy.ops.text_to_texture.add_to_assets(job_id=only_job(bpy).job_id) == {
            "FINISHED"}
        cats = catalogs(cdf)
        assert cats[obj.active_material.asset_data.catalog_id] == \
            "Text to Texture/Offline (procedural)"
        assert theirs in cdf.read_text(encoding="utf-8")  # the studio's lines are kept
        assert not (root / "props" / "blender_assets.cats.txt").exists()
        assert (root / "blender_assets.cats.txt~").is_file()  # a backup, as Blender keeps
    finally:
        libs.remove(lib)


def test_the_preference_adds_every_result_to_the_assets(blender) -> None:
    bpy = blender
    prefs = installed("blender.addon").prefs()
    prefs.add_to_assets = True
    try:
        obj = texture(bpy)
    finally:
        prefs.add_to_assets = False
    assert obj.active_material.asset_data is not None
    assert only_job(bpy).state == "applied"


def test_a_job_without_material_cannot_become_an_asset(blender) -> None:
    bpy = blender
    obj = texture(bpy)
    bpy.data.materials.remove(obj.active_material)
    with pytest.raises(RuntimeError, match="That job has no material"):
        bpy.ops.text_to_texture.add_to_assets(job_id=only_job(bpy).job_id)


def test_recall_puts_a_jobs_settings_back(blender, meshy) -> None:
    bpy = blender
    select(add_mesh("cube", "Crate"))
    settings = set_prompt("{name}, bronze", provider="MESHY", negative_prompt="rust", seed=7,
                          resolution="2048", enable_pbr=False, meshy_texture_model="meshy-6-lite",
                          meshy_original_uv=False, mesh_url="")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    job_id = only_job(bpy).job_id
    for key, value in (("provider", "PROCEDURAL"), ("prompt", "other"), ("seed", 1),
                       ("negative_prompt", ""), ("resolution", "1024"), ("enable_pbr", True)):
        setattr(settings, key, value)
    settings.meshy_texture_model = "meshy-7"
    settings.meshy_original_uv = True

    assert bpy.ops.text_to_texture.recall(job_id=job_id) == {"FINISHED"}
    assert (settings.provider, settings.prompt, settings.negative_prompt, settings.seed,
            settings.resolution, settings.enable_pbr) == (
        "MESHY", "{name}, bronze", "rust", 7, "2048", False)
    assert (settings.meshy_texture_model, settings.meshy_original_uv) == ("meshy-6-lite", False)


@pytest.mark.parametrize("pid", ["MESHY", "TRIVERSE", "DRESSX", "SCENARIO", "PROCEDURAL"])
def test_every_surface_recalls_what_it_gathers(blender, pid: str) -> None:
    """recall(options(settings)) leaves the settings as they were, for each provider."""
    bpy = blender
    surface = installed("blender.surfaces").surface(pid)
    settings = bpy.context.scene.text_to_texture
    changes = {"MESHY": {"meshy_texture_model": "meshy-n1", "meshy_original_uv": False,
                         "mesh_url": "https://x/m.glb"},
               "TRIVERSE": {"triverse_polygon_limit": 5000},
               "DRESSX": {"dressx_steps": 33, "dressx_refine": True},
               "SCENARIO": {"scenario_samples": 3, "scenario_tile_size": 2.5,
                            "scenario_steps": 40, "scenario_guidance": 7.5},
               "PROCEDURAL": {}}[pid]
    for key, value in changes.items():
        setattr(settings, key, value)
    options = surface.options(settings)
    before = {k: getattr(settings, k) for k in changes}
    bpy.ops.wm.read_homefile(use_empty=True)  # a fresh scene: defaults everywhere
    settings = bpy.context.scene.text_to_texture
    surface.recall(settings, options)
    assert {k: getattr(settings, k) for k in changes} == before


def test_the_cli_adds_results_to_the_assets_of_the_saved_copy(
    blender, tmp_path: Path, capsys
) -> None:
    bpy = blender
    src = tmp_path / "shots" / "scene.blend"
    out = tmp_path / "textured" / "scene.blend"
    src.parent.mkdir()
    out.parent.mkdir()
    select(add_mesh("cube", "Crate"))
    bpy.ops.wm.save_as_mainfile(filepath=str(src))
    code = installed("cli").main(["--provider", "PROCEDURAL", "--prompt", "mossy stone wall",
                                  "--add-to-assets", "--output", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert ("[t2t] 'T2T Crate' is an asset in Text to Texture/Offline (procedural)"
            in printed)
    # The catalog file goes beside the copy, where Blender looks for the copy's catalogs.
    assert not (src.parent / "blender_assets.cats.txt").exists()
    bpy.ops.wm.open_mainfile(filepath=str(out))
    data = bpy.data.objects["Crate"].active_material.asset_data
    assert [t.name for t in data.tags] == ["mossy", "stone", "wall", "Offline (procedural)"]
    assert catalogs(out.parent / "blender_assets.cats.txt")[data.catalog_id] == \
        "Text to Texture/Offline (procedural)"
