"""`make demo`: the main job, headless, on a fresh machine.

Builds the extension zip, installs it into a throwaway Blender profile (as an artist would),
builds a small scene of three different meshes, textures each from its own prompt with the
offline provider through the real operator, renders a Cycles preview and saves the .blend.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "demo" / "out"
os.environ["BLENDER_USER_RESOURCES"] = str(OUT / "blender-user")
os.environ.setdefault("TEXT_TO_TEXTURE_DATA_DIR", str(OUT / "t2t-data"))
sys.path.insert(0, str(ROOT / "tools"))

import ext_dev  # noqa: E402

SCENE = [
    # (mesh, name, location, prompt)
    ("monkey", "Bust", (-2.6, 0, 1.0), "weathered bronze with green patina"),
    ("cube", "Crate", (0, 0, 0.9), "dark oak wood planks"),
    ("sphere", "Orb", (2.6, 0, 1.0), "white marble with grey veins, polished"),
]


def build_scene(bpy) -> None:  # type: ignore[no-untyped-def]
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    for kind, name, loc, _prompt in SCENE:
        add = {"monkey": bpy.ops.mesh.primitive_monkey_add,
               "cube": bpy.ops.mesh.primitive_cube_add,
               "sphere": bpy.ops.mesh.primitive_uv_sphere_add}[kind]
        add(location=loc)
        obj = bpy.context.active_object
        obj.name = name
        if kind != "cube":
            obj.modifiers.new("Subdivision", "SUBSURF").levels = 2
            bpy.ops.object.shade_smooth()
        if kind == "cube":
            obj.scale = (0.9, 0.9, 0.9)
    bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, 0))
    bpy.context.active_object.name = "Floor"
    bpy.ops.object.camera_add(location=(0, -12.5, 4.0), rotation=(1.335, 0, 0))
    scene.camera = bpy.context.active_object
    bpy.ops.object.light_add(type="AREA", location=(3, -4, 6))
    light = bpy.context.active_object
    light.data.energy = 900
    light.data.size = 4
    world = bpy.data.worlds.new("World")
    scene.world = world
    world.color = (0.05, 0.05, 0.06)


def texture(bpy, name: str, prompt: str) -> None:  # type: ignore[no-untyped-def]
    for o in bpy.context.view_layer.objects:
        o.select_set(False)
    obj = bpy.data.objects[name]
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj
    settings = bpy.context.scene.text_to_texture
    settings.provider = "PROCEDURAL"
    settings.prompt = prompt
    settings.resolution = "1024"
    result = bpy.ops.text_to_texture.generate()
    rec = settings.jobs[-1]
    print(f"  {name:<6} {prompt!r}: {rec.state} — {rec.message}")
    if result != {"FINISHED"} or rec.state != "applied":
        raise SystemExit(f"demo failed on {name}: {rec.message}")


def render(bpy, path: Path) -> None:  # type: ignore[no-untyped-def]
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 16
    scene.cycles.use_denoising = False
    scene.render.resolution_x, scene.render.resolution_y = 960, 400
    scene.render.image_settings.file_format = "PNG"
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)


def main() -> None:
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    zip_path = ext_dev.build_zip(OUT / "dist")
    import bpy

    ext_dev.install(zip_path)
    build_scene(bpy)
    blend = OUT / "demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))  # saved first: maps go to //textures/
    print("Texturing with the offline provider:")
    for _kind, name, _loc, prompt in SCENE:
        texture(bpy, name, prompt)
    bpy.ops.wm.save_mainfile()
    png = OUT / "preview.png"
    render(bpy, png)
    print(f"\nScene:    {blend}\nPreview:  {png}\nTextures: {OUT / 'textures'}")
    print(f"Done in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
