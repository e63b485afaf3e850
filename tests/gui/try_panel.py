"""Runs inside the real Blender application (real-blender run --python ...): install the zip,
build a scene, open the Texture tab, invoke the operator modally, quit after a while."""

import glob
import os
import sys

import bpy

ZIP = sorted(glob.glob("/src/dist/text_to_texture-*.zip"))[-1]
RESOLUTION = os.environ.get("T2T_RES", "2048")
QUIT_AFTER = float(os.environ.get("T2T_QUIT", "40"))
LOG = "/src/build/gui_log.txt"


def log(*args):
    with open(LOG, "a") as fh:
        print(*args, file=fh)


def setup():
    bpy.ops.extensions.package_install_files(filepath=ZIP, repo="user_default",
                                             enable_on_install=True)
    for o in list(bpy.data.objects):
        bpy.data.objects.remove(o)
    bpy.ops.mesh.primitive_monkey_add(location=(-2.5, 0, 0))
    bpy.ops.mesh.primitive_cube_add(location=(0, 0, 0))
    bpy.ops.mesh.primitive_uv_sphere_add(location=(2.5, 0, 0))
    for o in bpy.context.view_layer.objects:
        o.select_set(True)
    s = bpy.context.scene.text_to_texture
    s.prompt = "weathered bronze with green patina"
    s.resolution = RESOLUTION
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                space = area.spaces.active
                space.show_region_ui = True
                space.shading.type = "SOLID"
                space.shading.color_type = "TEXTURE"
                for region in area.regions:
                    if region.type == "UI":
                        try:
                            region.active_panel_category = "Texture"
                        except Exception as exc:
                            log("category", exc)
    log("setup done", sys.version)
    bpy.app.timers.register(start, first_interval=float(os.environ.get("T2T_START", "2")))
    return None


def start():
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                region = next(r for r in area.regions if r.type == "WINDOW")
                with bpy.context.temp_override(window=window, area=area, region=region):
                    r = bpy.ops.text_to_texture.generate("INVOKE_DEFAULT")
                    log("invoke", r)
                bpy.app.timers.register(watch, first_interval=0.5)
                return None
    return None


def watch():
    recs = bpy.context.scene.text_to_texture.jobs
    log("jobs", [(r.object_name, r.state, round(r.progress, 2), r.message) for r in recs])
    return 1.0


def quit_blender():
    log("quit")
    bpy.ops.wm.quit_blender()


bpy.app.timers.register(setup, first_interval=1.0)
bpy.app.timers.register(quit_blender, first_interval=QUIT_AFTER)
