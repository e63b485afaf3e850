"""Add-on preferences: provider accounts and where textures go.

Keys live here (Blender's user preferences) or in environment variables, never in a .blend.
"""

from __future__ import annotations

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from .blender.compat import BLEND_RELATIVE_PATH
from .providers.registry import CHOICES, EXTRAS, LABELS

DOC_BASES = {
    "MESHY": "https://api.meshy.ai",
    "TRIVERSE": "https://api.triverse.ai/api/v1",
    "DRESSX": "https://api.dressx.com",
    "SCENARIO": "https://api.cloud.scenario.com/v1",
}


def _key(pid: str) -> StringProperty:  # type: ignore[valid-type]
    return StringProperty(
        name="API key", subtype="PASSWORD", default="",
        description=f"Your {LABELS[pid]} API key (the {pid}_API_KEY environment variable wins)",
    )


def _base(pid: str) -> StringProperty:  # type: ignore[valid-type]
    return StringProperty(
        name="Base URL", default="",
        description=f"Leave empty for {DOC_BASES[pid]} (the {pid}_API_BASE variable wins)",
    )


class T2T_Preferences(bpy.types.AddonPreferences):
    bl_idname = __package__  # type: ignore[assignment]

    meshy_api_key: _key("MESHY")  # type: ignore[valid-type]
    meshy_api_base: _base("MESHY")  # type: ignore[valid-type]
    triverse_api_key: _key("TRIVERSE")  # type: ignore[valid-type]
    triverse_api_base: _base("TRIVERSE")  # type: ignore[valid-type]
    dressx_api_key: _key("DRESSX")  # type: ignore[valid-type]
    dressx_api_base: _base("DRESSX")  # type: ignore[valid-type]
    dressx_public_url: StringProperty(  # type: ignore[valid-type]
        name="Public URL", default="",
        description="Public address (e.g. a tunnel) at which DRESSX reaches this computer "
        "(DRESSX_PUBLIC_URL wins)",
    )
    dressx_local_port: IntProperty(  # type: ignore[valid-type]
        name="Local port", default=8765, min=0, max=65535,
        description="Port of the small local server DRESSX's results reach through your "
        "tunnel (0 = any free port, but then a job cannot resume after a restart)",
    )
    dressx_coordinator_key: StringProperty(  # type: ignore[valid-type]
        name="Coordinator key", subtype="PASSWORD", default="",
        description="Optional DRESSX coordinator key sent with each job "
        "(DRESSX_COORDINATOR_KEY wins)",
    )
    dressx_timeout_s: IntProperty(  # type: ignore[valid-type]
        name="Give up after", default=1800, min=60, max=24 * 3600, subtype="TIME_ABSOLUTE",
        description="How long to wait for DRESSX's result before the job ends as timed out "
        "(its order id is kept to look it up)",
    )
    scenario_api_key: _key("SCENARIO")  # type: ignore[valid-type]
    scenario_api_secret: StringProperty(  # type: ignore[valid-type]
        name="API secret", subtype="PASSWORD", default="",
        description="Your Scenario API secret (SCENARIO_API_SECRET wins)",
    )
    scenario_api_base: _base("SCENARIO")  # type: ignore[valid-type]
    scenario_model_id: StringProperty(  # type: ignore[valid-type]
        name="Model id", default="", description="Scenario model id (SCENARIO_MODEL_ID wins)",
    )
    scenario_project_id: StringProperty(  # type: ignore[valid-type]
        name="Project id", default="",
        description="Optional Scenario project (SCENARIO_PROJECT_ID wins)",
    )

    default_provider: EnumProperty(  # type: ignore[valid-type]
        name="Default provider", items=CHOICES, default="PROCEDURAL",
        description="Provider new scenes start with",
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
    keep_days: IntProperty(  # type: ignore[valid-type]
        name="Keep finished jobs (days)", default=14, min=1, max=365,
        description="Finished jobs are dropped from the journal after this many days",
    )

    def saved_config(self, provider_id: str) -> dict[str, str]:
        prefix = provider_id.lower()
        saved = {
            "api_key": getattr(self, f"{prefix}_api_key", ""),
            "api_base": getattr(self, f"{prefix}_api_base", ""),
        }
        for key, _var in EXTRAS.get(provider_id, []):
            value = getattr(self, f"{prefix}_{key}", "")
            saved[key] = "" if value == 0 else str(value)
        return saved

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        col = layout.column()
        col.prop(self, "default_provider")
        col.prop(self, "texture_folder")
        col.prop(self, "pack_images")
        col.prop(self, "keep_days")
        if not bpy.app.online_access:
            box = layout.box()
            box.label(text="Online access is off: only the offline provider works.", icon="ERROR")
            box.label(text="Turn on Preferences > System > Network > Allow Online Access.")
        for pid, label, _desc in CHOICES:
            if pid == "PROCEDURAL":
                continue
            box = layout.box()
            box.label(text=label, icon="WORLD")
            prefix = pid.lower()
            box.prop(self, f"{prefix}_api_key")
            if pid == "SCENARIO":
                box.prop(self, "scenario_api_secret")
                box.prop(self, "scenario_model_id")
                box.prop(self, "scenario_project_id")
            if pid == "DRESSX":
                box.prop(self, "dressx_public_url")
                box.prop(self, "dressx_local_port")
                box.prop(self, "dressx_coordinator_key")
                box.prop(self, "dressx_timeout_s")
            box.prop(self, f"{prefix}_api_base")


classes = (T2T_Preferences,)
