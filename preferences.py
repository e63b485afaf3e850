"""Add-on preferences: provider accounts, where textures go, how long the journal keeps jobs.

Keys live here (Blender's user preferences) or in environment variables, never in a .blend.
Each cloud provider gets an API key and a base URL; its other settings come from its surface
(`blender/surfaces/<provider>.py`).
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .blender import connection
from .blender.compat import BLEND_RELATIVE_PATH
from .blender.surfaces import all_surfaces
from .providers.registry import CHOICES, PROVIDERS


def _key(label: str, pid: str) -> Any:
    return StringProperty(
        name="API key", subtype="PASSWORD", default="",
        description=f"Your {label} API key (the {pid}_API_KEY environment variable wins)",
    )


def _base(default_base: str, pid: str) -> Any:
    return StringProperty(
        name="Base URL", default="",
        description=f"Leave empty for {default_base} (the {pid}_API_BASE variable wins)",
    )


def _timeout(label: str, pid: str, default: float) -> Any:
    return IntProperty(
        name="Give up after", default=int(default), min=60, max=24 * 3600,
        subtype="TIME_ABSOLUTE",
        description=f"How long a {label} job may take from being sent until its maps are in; "
        f"then it ends as timed out, its {label} id kept to look it up (the {pid}_TIMEOUT_S "
        "variable wins)",
    )


class T2T_Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__  # type: ignore[assignment]

    default_provider: EnumProperty(  # type: ignore[valid-type]
        name="Default provider", items=CHOICES, default="PROCEDURAL",
        description="Provider new files start with",
    )
    texture_folder: StringProperty(  # type: ignore[valid-type]
        name="Texture folder", subtype="DIR_PATH", default="//textures/",
        options=BLEND_RELATIVE_PATH,
        description="Where maps are saved; '//' means next to the .blend. Unsaved files use "
        "the extension's own folder",
    )
    pack_images: BoolProperty(  # type: ignore[valid-type]
        name="Pack images into .blend", default=False,
        description="Pack the maps into the .blend so it can be shared as one file",
    )
    add_to_assets: BoolProperty(  # type: ignore[valid-type]
        name="Add results to the Asset Browser", default=False,
        description="Mark every applied material as an asset (catalog 'Text to Texture/"
        "<provider>', tags from the prompt, a preview), to drag onto other objects later",
    )
    keep_days: IntProperty(  # type: ignore[valid-type]
        name="Keep finished jobs (days)", default=14, min=1, max=365,
        description="Finished jobs are dropped from the journal after this many days (checked "
        "when a file is opened); unfinished jobs are always kept",
    )

    def saved_config(self, provider_id: str) -> dict[str, str]:
        prefix = provider_id.lower()
        saved = {
            "api_key": getattr(self, f"{prefix}_api_key", ""),
            "api_base": getattr(self, f"{prefix}_api_base", ""),
            "timeout_s": str(getattr(self, f"{prefix}_timeout_s", "") or ""),
        }
        for key, _var in PROVIDERS[provider_id].extras:
            value = getattr(self, f"{prefix}_{key}", "")
            saved[key] = "" if value == 0 else str(value)
        return saved

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        col = layout.column()
        col.prop(self, "default_provider")
        col.prop(self, "texture_folder")
        col.prop(self, "pack_images")
        col.prop(self, "add_to_assets")
        col.prop(self, "keep_days")
        if not bpy.app.online_access:
            box = layout.box()
            box.label(text="Online access is off: only the offline provider works.", icon="ERROR")
            box.label(text="Turn on Preferences > System > Network > Allow Online Access.")
        surfaces = all_surfaces()
        for pid, cls in PROVIDERS.items():
            if cls.offline:
                continue
            box = layout.box()
            box.label(text=cls.label, icon="WORLD")
            prefix = pid.lower()
            box.prop(self, f"{prefix}_api_key")
            for name in surfaces[pid].PREFS:
                box.prop(self, name)
            box.prop(self, f"{prefix}_timeout_s")
            box.prop(self, f"{prefix}_api_base")
            draw_connection_row(box, pid)


def draw_connection_row(layout: bpy.types.UILayout, provider_id: str) -> None:
    """The Test Connection button and what the last test said (this session only)."""
    row = layout.row(align=True)
    op = row.operator("text_to_texture.test_connection", icon="LINKED",
                      text="Testing…" if connection.running(provider_id) else "Test Connection")
    op.provider = provider_id
    check = connection.result(provider_id)
    if check is not None and not connection.running(provider_id):
        layout.label(text=check.line, icon="CHECKMARK" if check.ok else "ERROR")


for _pid, _cls in PROVIDERS.items():
    if not _cls.offline:
        T2T_Preferences.__annotations__[f"{_pid.lower()}_api_key"] = _key(_cls.label, _pid)
        T2T_Preferences.__annotations__[f"{_pid.lower()}_api_base"] = _base(_cls.default_base,
                                                                            _pid)
        T2T_Preferences.__annotations__[f"{_pid.lower()}_timeout_s"] = _timeout(
            _cls.label, _pid, _cls.default_timeout_s)
for _surface in all_surfaces().values():
    T2T_Preferences.__annotations__.update(_surface.PREFS)

classes = (T2T_Preferences,)
