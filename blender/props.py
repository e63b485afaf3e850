"""Scene settings and job records, saved with the .blend (prompts and job ids, never keys)."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from ..jobs.job import State
from ..providers.registry import CHOICES
from .surfaces import all_surfaces

UV_POLICIES = [
    ("EXISTING_OR_UNWRAP", "Existing, else unwrap",
     "Use the object's active UV map; a mesh without UVs gets a new UV map 'T2T_UV' "
     "(Smart UV Project). The artist's UV maps are never changed"),
    ("EXISTING_ONLY", "Existing only",
     "Use the object's active UV map; skip objects that have none"),
    ("ALWAYS_NEW", "New UV map",
     "Unwrap into a new UV map 'T2T_UV' even when the mesh has UVs; existing maps are kept"),
]

# Saved .blend files store a record's state as a number: a state added later gets a new number
# instead of shifting the ones files already hold.
_STATE_NUMBERS = {"queued": 0, "exporting": 1, "submitting": 2, "running": 3, "downloading": 4,
                  "ready": 5, "applied": 6, "failed": 7, "canceled": 8, "baking": 9}
JOB_STATES = [(state.value, state.value.capitalize(), "", _STATE_NUMBERS[state.value])
              for state in State]


class T2T_Variant(bpy.types.PropertyGroup):
    """One of several results of a job (Scenario samples); all are kept, one is shown."""

    material: PointerProperty(type=bpy.types.Material)  # type: ignore[valid-type]


class T2T_JobRecord(bpy.types.PropertyGroup):
    """One job as the scene remembers it; the journal holds the rest."""

    job_id: StringProperty(name="Job")  # type: ignore[valid-type]
    provider: StringProperty(name="Provider")  # type: ignore[valid-type]
    object: PointerProperty(name="Object", type=bpy.types.Object)  # type: ignore[valid-type]
    object_name: StringProperty(name="Object name")  # type: ignore[valid-type]
    prompt: StringProperty(name="Prompt")  # type: ignore[valid-type]
    # The panel's prompt as written (placeholders and all) when the job used it; "" when the
    # object or a prompts file gave its own. Recall puts this back rather than the filled one.
    prompt_template: StringProperty(name="Prompt as written")  # type: ignore[valid-type]
    state: EnumProperty(name="State", items=JOB_STATES, default="queued")  # type: ignore[valid-type]
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")  # type: ignore[valid-type]
    message: StringProperty(name="Status")  # type: ignore[valid-type]
    remote_id: StringProperty(name="Remote id")  # type: ignore[valid-type]
    uv_map: StringProperty(name="UV map")  # type: ignore[valid-type]
    material: PointerProperty(name="Material", type=bpy.types.Material)  # type: ignore[valid-type]
    batch: StringProperty(name="Batch")  # type: ignore[valid-type]
    info: StringProperty(name="Provider info")  # type: ignore[valid-type]  # e.g. balance
    variants: CollectionProperty(type=T2T_Variant)  # type: ignore[valid-type]
    # Whole seconds since the epoch (a FloatProperty is single precision: minutes off today).
    created: IntProperty(name="Created")  # type: ignore[valid-type]
    finished: IntProperty(name="Finished")  # type: ignore[valid-type]


class T2T_SceneSettings(bpy.types.PropertyGroup):
    provider: EnumProperty(  # type: ignore[valid-type]
        name="Provider", items=CHOICES, default="PROCEDURAL",
        description="Who makes the texture",
    )
    prompt: StringProperty(  # type: ignore[valid-type]
        name="Prompt", description="What the surface should look like, e.g. "
        "'weathered bronze with green patina'", default="",
    )
    negative_prompt: StringProperty(  # type: ignore[valid-type]
        name="Negative", description="What the texture should not have", default="",
    )
    seed: IntProperty(  # type: ignore[valid-type]
        name="Seed", description="Same prompt and seed give the same result", default=0, min=0,
    )
    resolution: EnumProperty(  # type: ignore[valid-type]
        name="Resolution",
        items=[("1024", "1024 px", ""), ("2048", "2048 px", ""), ("4096", "4096 px", "")],
        default="1024",
    )
    enable_pbr: BoolProperty(  # type: ignore[valid-type]
        name="PBR maps", description="Roughness, metallic and normal maps besides base color",
        default=True,
    )
    uv_policy: EnumProperty(  # type: ignore[valid-type]
        name="UVs", items=UV_POLICIES, default="EXISTING_OR_UNWRAP",
    )
    # Shared by the cloud providers that take them; each provider's own settings come from its
    # surface (`blender/surfaces/<provider>.py`) and are added below.
    reference_image: PointerProperty(  # type: ignore[valid-type]
        name="Reference image", type=bpy.types.Image,
        description="An image whose style the texture should follow (Meshy, Triverse)",
    )
    mesh_url: StringProperty(  # type: ignore[valid-type]
        name="Mesh URL", default="",
        description="A public https URL of the mesh to send instead of uploading it "
        "(only for a single object)",
    )
    quote: StringProperty(name="Price", default="")  # type: ignore[valid-type]
    jobs: CollectionProperty(type=T2T_JobRecord)  # type: ignore[valid-type]
    active_job: IntProperty(name="Active job", default=0)  # type: ignore[valid-type]


for _surface in all_surfaces().values():
    T2T_SceneSettings.__annotations__.update(_surface.SCENE)

classes = (T2T_Variant, T2T_JobRecord, T2T_SceneSettings)


def settings_of(scene: Any) -> Any:
    """A scene's Text to Texture settings (the stubs do not know the attached pointer)."""
    return scene.text_to_texture


def attach() -> None:
    # The stubs know no such member, and declare PointerProperty as returning None.
    bpy.types.Scene.text_to_texture = PointerProperty(  # type: ignore[attr-defined,func-returns-value]
        type=T2T_SceneSettings)


def detach() -> None:
    del bpy.types.Scene.text_to_texture  # type: ignore[attr-defined]
