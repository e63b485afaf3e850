"""Scene settings and job records, saved with the .blend (prompts and job ids, never keys)."""

from __future__ import annotations

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

from ..providers.registry import CHOICES

UV_POLICIES = [
    ("EXISTING_OR_UNWRAP", "Existing, else unwrap",
     "Use the object's active UV map; a mesh without UVs gets a new UV map 'T2T_UV' "
     "(Smart UV Project). The artist's UV maps are never changed"),
    ("EXISTING_ONLY", "Existing only",
     "Use the object's active UV map; skip objects that have none"),
    ("ALWAYS_NEW", "New UV map",
     "Unwrap into a new UV map 'T2T_UV' even when the mesh has UVs; existing maps are kept"),
]

JOB_STATES = [
    ("queued", "Queued", ""),
    ("exporting", "Exporting", ""),
    ("submitting", "Submitting", ""),
    ("running", "Running", ""),
    ("downloading", "Downloading", ""),
    ("ready", "Ready", ""),
    ("applied", "Applied", ""),
    ("failed", "Failed", ""),
    ("canceled", "Canceled", ""),
]


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
    # Shared by the cloud providers that take them.
    reference_image: PointerProperty(  # type: ignore[valid-type]
        name="Reference image", type=bpy.types.Image,
        description="An image whose style the texture should follow (Meshy, Triverse)",
    )
    mesh_url: StringProperty(  # type: ignore[valid-type]
        name="Mesh URL", default="",
        description="A public https URL of the mesh to send instead of uploading it "
        "(only for a single object)",
    )
    # Meshy
    meshy_original_uv: BoolProperty(  # type: ignore[valid-type]
        name="Keep original UVs", default=True,
        description="Paint onto the object's own UVs. Off: Meshy makes its own UVs, which "
        "are brought onto the object as a new UV map 'Meshy_UV' (yours are kept)",
    )
    meshy_ai_model: EnumProperty(  # type: ignore[valid-type]
        name="Model",
        items=[("latest", "Latest", "Meshy's newest texturing model"),
               ("meshy-6", "Meshy 6", ""), ("meshy-5", "Meshy 5", "")],
        default="latest",
    )
    meshy_art_style: EnumProperty(  # type: ignore[valid-type]
        name="Art style",
        description="Only Meshy's older Text to Texture endpoint takes an art style",
        items=[(v, v.replace("-", " ").title(), "") for v in (
            "realistic", "fake-3d-cartoon", "japanese-anime", "cartoon-line-art",
            "realistic-hand-drawn", "fake-3d-hand-drawn", "oriental-comic-ink")],
        default="realistic",
    )
    # Triverse
    triverse_polygon_limit: IntProperty(  # type: ignore[valid-type]
        name="Polygon limit", default=0, min=0, max=1_500_000, soft_min=0,
        description="Most polygons Triverse may return (1,000 to 1,500,000); 0 leaves it to "
        "Triverse. The object then gets Triverse's mesh; yours is kept in the file",
    )
    # DRESSX
    dressx_steps: IntProperty(  # type: ignore[valid-type]
        name="Steps", default=20, min=0, max=150,
        description="Inference steps (0 leaves it to DRESSX)",
    )
    dressx_refine: BoolProperty(  # type: ignore[valid-type]
        name="Refine", default=False, description="Ask DRESSX for an extra refinement pass",
    )
    # Scenario
    scenario_samples: IntProperty(  # type: ignore[valid-type]
        name="Variants", default=1, min=1, max=4,
        description="Textures made per object; all are kept and you switch between them in "
        "the job list",
    )
    scenario_tile_size: FloatProperty(  # type: ignore[valid-type]
        name="Tile size", default=1.0, min=0.01, soft_max=10.0, unit="LENGTH",
        description="How big one repeat of the seamless texture is on the object",
    )
    scenario_steps: IntProperty(  # type: ignore[valid-type]
        name="Steps", default=0, min=0, max=150, description="0 leaves it to the model",
    )
    scenario_guidance: FloatProperty(  # type: ignore[valid-type]
        name="Guidance", default=0.0, min=0.0, max=20.0,
        description="How closely to follow the prompt; 0 leaves it to the model",
    )
    quote: StringProperty(name="Price", default="")  # type: ignore[valid-type]
    jobs: CollectionProperty(type=T2T_JobRecord)  # type: ignore[valid-type]
    active_job: IntProperty(name="Active job", default=0)  # type: ignore[valid-type]


classes = (T2T_Variant, T2T_JobRecord, T2T_SceneSettings)


def attach() -> None:
    bpy.types.Scene.text_to_texture = PointerProperty(type=T2T_SceneSettings)  # type: ignore[attr-defined]


def detach() -> None:
    del bpy.types.Scene.text_to_texture  # type: ignore[attr-defined]
