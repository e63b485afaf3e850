"""The in-Blender half of `make test-gui`: runs inside the real Blender application.

Started by tests/gui/run_gui.py as
    real-blender run --factory-startup --online-mode --python /src/tests/gui/gui_scenario.py
with T2T_GUI_DIR (default /src/build/gui) naming the folder both halves share. This script is a
passive agent: it installs the extension zip named in settings.json into the throwaway profile
(BLENDER_USER_RESOURCES), builds a scene with three selected meshes, opens the sidebar and then,
from a `bpy.app.timers` poll:

* writes `state.json` (atomically, every poll): the sidebar's active tab, every job record,
  the running modal operators and each object's material with its image maps;
* appends one line per happening to `events.jsonl` (ready, ack, job state changes, error);
* executes the driver's commands, files `cmd/NNNN.json` taken in order:
  {"do": "configure", ...scene settings}, {"do": "invoke"} (the operator with INVOKE_DEFAULT,
  only when the driver is told not to click the button), {"do": "quit"}.

Clicks, key presses and screenshots are the driver's (xdotool and ImageMagick on the virtual
screen), so the operator runs exactly as an artist starts it: the button, its modal timer, Esc.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import traceback
from pathlib import Path

import bpy
from mathutils import Vector

OUT = Path(os.environ.get("T2T_GUI_DIR", "/src/build/gui"))
PKG = "bl_ext.user_default.text_to_texture"
POLL = 0.25
OBJECTS = (  # name, primitive operator, x location
    ("Bust", "primitive_monkey_add", -2.6),
    ("Crate", "primitive_cube_add", 0.0),
    ("Ball", "primitive_uv_sphere_add", 2.6),
)

_done_cmds: set[str] = set()
_last_states: dict[str, str] = {}
_t0 = time.time()


# ---- output ---------------------------------------------------------------------------------

def event(kind: str, **data: object) -> None:
    data = {"t": round(time.time() - _t0, 2), "event": kind, **data}
    with open(OUT / "events.jsonl", "a") as fh:
        fh.write(json.dumps(data) + "\n")


def write_state(state: dict) -> None:
    tmp = OUT / "state.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(OUT / "state.json")


def guarded(fn):  # type: ignore[no-untyped-def]
    """A timer callback that reports its exception (and prints the traceback) instead of dying
    silently; the driver fails the run on either."""

    def wrapper():  # type: ignore[no-untyped-def]
        try:
            return fn()
        except Exception as exc:
            traceback.print_exc()
            event("error", where=fn.__name__, error=f"{type(exc).__name__}: {exc}",
                  traceback=traceback.format_exc())
            return POLL if fn is poll else None

    wrapper.__name__ = fn.__name__
    return wrapper


# ---- the scene --------------------------------------------------------------------------------

def view3d():  # type: ignore[no-untyped-def]
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                return window, area
    return None, None


def color(c) -> list[int]:  # type: ignore[no-untyped-def]
    return [round(v * 255) for v in list(c)[:3]]


def setup() -> None:
    settings = json.loads((OUT / "settings.json").read_text())
    result = bpy.ops.extensions.package_install_files(
        filepath=settings["zip"], repo="user_default", enable_on_install=True)
    if result != {"FINISHED"} or PKG not in sys.modules:
        raise RuntimeError(f"installing {settings['zip']} failed: {result}")

    # Keys the way an artist enters them: the add-on preferences (no environment variables).
    prefs = bpy.context.preferences.addons[PKG].preferences
    for key, value in settings.get("prefs", {}).items():
        setattr(prefs, key, value)

    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    _window, area = view3d()
    space = area.spaces.active
    space.show_region_ui = True
    space.shading.type = "SOLID"
    space.shading.color_type = "TEXTURE"
    r3d = space.region_3d
    r3d.view_location = (0.0, 0.0, 0.0)
    r3d.view_distance = 10.0
    # side by side as the default view sees them: along the view's right axis, on the ground
    right = r3d.view_rotation @ Vector((1.0, 0.0, 0.0))
    right.z = 0.0
    right.normalize()
    toward = r3d.view_rotation @ Vector((0.0, 0.0, 1.0))  # from the scene to the viewer
    facing = math.atan2(toward.x, -toward.y)  # turns a mesh's -Y front (Suzanne's face) to it
    for name, op, x in OBJECTS:
        getattr(bpy.ops.mesh, op)(location=right * x, rotation=(0.0, 0.0, facing))
        obj = bpy.context.active_object
        obj.name = name
    select_objects()

    bpy.app.timers.register(guarded(ready), first_interval=0.5)
    bpy.app.timers.register(guarded(poll), first_interval=POLL, persistent=True)


def select_objects() -> None:
    names = [name for name, _op, _x in OBJECTS]
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj.name in names)
    bpy.context.view_layer.objects.active = bpy.data.objects[names[-1]]


def ready() -> None:
    """Geometry the driver needs to find things on the screen (Blender's window coordinates
    start bottom-left), and the theme colours of the widgets it looks for."""
    window, area = view3d()
    regions = {r.type: {"x": r.x, "y": r.y, "width": r.width, "height": r.height}
               for r in area.regions if r.type in ("UI", "WINDOW", "HEADER")}
    ui = bpy.context.preferences.themes[0].user_interface
    event("ready", blender=bpy.app.version_string, python=sys.version.split()[0],
          online=bpy.app.online_access,
          window={"x": window.x, "y": window.y, "width": window.width, "height": window.height},
          area={"x": area.x, "y": area.y, "width": area.width, "height": area.height},
          regions=regions, ui_scale=bpy.context.preferences.system.ui_scale,
          pixel_size=bpy.context.preferences.system.pixel_size,
          theme={"tool": color(ui.wcol_tool.inner), "tool_sel": color(ui.wcol_tool.inner_sel),
                 "menu": color(ui.wcol_menu.inner), "text": color(ui.wcol_text.inner),
                 "num": color(ui.wcol_num.inner), "regular": color(ui.wcol_regular.inner)})


# ---- the poll: commands in, state out -------------------------------------------------------

def engine():  # type: ignore[no-untyped-def]
    mod = sys.modules.get(f"{PKG}.blender.engine")
    return mod.engine() if mod else None


def material_info(obj: bpy.types.Object) -> dict | None:
    mat = obj.active_material
    if mat is None:
        return None
    info: dict = {"name": mat.name, "bsdf": False, "images": {}}
    if obj.material_slots:
        info["link"] = obj.material_slots[obj.active_material_index].link
    if mat.node_tree:
        for node in mat.node_tree.nodes:
            if node.type == "BSDF_PRINCIPLED":
                info["bsdf"] = True
            elif node.type == "TEX_IMAGE" and node.image is not None:
                img = node.image
                sockets = sorted({link.to_socket.name for out in node.outputs
                                  for link in out.links})
                entry: dict = {"image": img.name, "size": list(img.size), "to": sockets}
                entry["centre"] = centre_pixel(img)
                info["images"][node.label or node.name] = entry
    return info


_centres: dict[tuple[str, str, tuple[int, int]], list[int] | None] = {}


def centre_pixel(img: bpy.types.Image) -> list[int] | None:
    """The image's centre pixel, 0..255 (cached: reading `pixels` copies the whole image)."""
    w, h = img.size
    key = (img.name, img.filepath, (w, h))
    if key not in _centres:
        if not (w and h):
            return None
        import numpy as np

        pixels = np.empty(w * h * img.channels, dtype=np.float32)
        img.pixels.foreach_get(pixels)
        i = ((h // 2) * w + w // 2) * img.channels
        _centres[key] = [round(float(v) * 255) for v in pixels[i:i + 3]]
    return _centres[key]


def modal_generators() -> int:
    """How many "Texture N selected" operators are running modally in the windows."""
    wm = bpy.context.window_manager
    return sum(1 for window in wm.windows for op in window.modal_operators
               if op.bl_idname in ("TEXT_TO_TEXTURE_OT_generate", "text_to_texture.generate"))


def snapshot() -> dict:
    _window, area = view3d()
    ui_region = next((r for r in area.regions if r.type == "UI"), None) if area else None
    scene = bpy.context.scene
    settings = getattr(scene, "text_to_texture", None)
    jobs = []
    if settings is not None:
        for rec in settings.jobs:
            jobs.append({"id": rec.job_id, "object": rec.object_name, "provider": rec.provider,
                         "state": rec.state, "progress": round(rec.progress, 3),
                         "message": rec.message, "batch": rec.batch, "info": rec.info,
                         "material": rec.material.name if rec.material else None})
            key = rec.job_id
            if _last_states.get(key) != rec.state:
                _last_states[key] = rec.state
                event("job", id=key, object=rec.object_name, provider=rec.provider,
                      state=rec.state, progress=round(rec.progress, 3), message=rec.message)
    eng = engine()
    objects = {}
    for name, _op, _x in OBJECTS:
        obj = bpy.data.objects.get(name)
        if obj is not None:
            objects[name] = {"selected": obj.select_get(), "material": material_info(obj)}
    return {
        "t": round(time.time() - _t0, 2),
        "category": ui_region.active_panel_category if ui_region else None,
        "sidebar": area.spaces.active.show_region_ui if area else None,
        "mode": bpy.context.mode,
        "provider": settings.provider if settings else None,
        "modal_running": modal_generators(),
        "active_jobs": len(eng.active_ids()) if eng else None,
        "jobs": jobs,
        "objects": objects,
        "done_cmds": sorted(_done_cmds),
    }


def poll() -> float:
    cmd_dir = OUT / "cmd"
    if cmd_dir.is_dir():
        for path in sorted(cmd_dir.glob("*.json")):
            if path.name in _done_cmds:
                continue
            _done_cmds.add(path.name)
            cmd = json.loads(path.read_text())
            try:
                result = run_command(dict(cmd))
                event("ack", cmd=path.name, do=cmd.get("do"), result=result)
            except Exception as exc:
                traceback.print_exc()
                event("error", where=f"command {path.name}", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    write_state(snapshot())
    return POLL


def run_command(cmd: dict) -> object:
    do = cmd.pop("do")
    if do == "configure":
        settings = bpy.context.scene.text_to_texture
        for key, value in cmd.items():
            setattr(settings, key, value)
        select_objects()
        redraw()
        return {k: getattr(settings, k) for k in cmd}
    if do == "invoke":
        window, area = view3d()
        region = next(r for r in area.regions if r.type == "WINDOW")
        with bpy.context.temp_override(window=window, area=area, region=region):
            return sorted(bpy.ops.text_to_texture.generate("INVOKE_DEFAULT"))
    if do == "quit":
        bpy.app.timers.register(quit_blender, first_interval=0.2)
        return "quitting"
    raise ValueError(f"unknown command {do!r}")


def redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            area.tag_redraw()


def quit_blender() -> None:
    window, _area = view3d()
    with bpy.context.temp_override(window=window):
        bpy.ops.wm.quit_blender()


OUT.mkdir(parents=True, exist_ok=True)
bpy.app.timers.register(guarded(setup), first_interval=0.5)
