"""Triverse end to end in real Blender, through the installed zip, against its emulator."""

from __future__ import annotations

import numpy as np

from bake_checks import covered_texels, pixels
from emulators.base import expected_pixels
from emulators.triverse import MR_PIXELS
from t2t_testing import add_mesh, image_array, linked_image, select, set_prompt


def center_and_corner(image):  # type: ignore[no-untyped-def]
    arr = image_array(image)
    h, w = arr.shape[:2]
    return tuple(arr[h // 2, w // 2, :3]), tuple(arr[1, 1, :3])


def test_triverse_textures_objects_on_their_own_mesh_and_uvs(blender, triverse) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    ball = add_mesh("sphere", "Ball", (3, 0, 0))
    ball.modifiers.new("Bevel", "BEVEL")
    meshes = {o.name: (o.data, len(o.data.vertices)) for o in (crate, ball)}
    select(crate, ball)
    set_prompt("painted steel", provider="TRIVERSE", resolution="2048")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}

    recs = bpy.context.scene.text_to_texture.jobs
    assert [r.state for r in recs] == ["applied", "applied"], [r.message for r in recs]
    for obj in (crate, ball):
        # Triverse returned a regridded box of its own; its maps were baked onto our UVs.
        assert (obj.data, len(obj.data.vertices)) == meshes[obj.name]
        assert [u.name for u in obj.data.uv_layers] == ["UVMap"]
        mat = obj.active_material
        assert mat.name.startswith(f"T2T {obj.name}")
        uvnode = next(n for n in mat.node_tree.nodes if n.bl_idname == "ShaderNodeUVMap")
        assert uvnode.uv_map == "UVMap"
        texels = covered_texels(obj, "UVMap", 2048)
        base = linked_image(mat, "Base Color").image
        assert tuple(base.size) == (2048, 2048)
        assert _share(base, texels, expected_pixels("base_color")) >= 0.9
        # The packed glTF map stays packed, through Separate Color: G -> Roughness, B -> Metallic.
        tree = mat.node_tree
        bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
        rough_link = bsdf.inputs["Roughness"].links[0]
        metal_link = bsdf.inputs["Metallic"].links[0]
        split = rough_link.from_node
        assert split.bl_idname == "ShaderNodeSeparateColor" and split == metal_link.from_node
        assert (rough_link.from_socket.name, metal_link.from_socket.name) == ("Green", "Blue")
        packed = split.inputs["Color"].links[0].from_node.image
        assert packed.colorspace_settings.is_data
        assert _share(packed, texels, MR_PIXELS[0]) >= 0.9
        normal = linked_image(mat, "Normal").image
        assert normal.colorspace_settings.is_data
    assert "Bevel" in ball.modifiers  # the object keeps its modifiers
    assert {o.name for o in bpy.data.objects} == {"Crate", "Ball"}  # nothing left over
    assert len(triverse.recorded("POST", "/upload/model")) == 2


def _share(image, texels, rgb) -> float:  # type: ignore[no-untyped-def]
    """How many covered texels hold this colour (give or take rounding)."""
    got = np.round(pixels(image)[texels.index, :3] * 255)
    return float((np.abs(got - np.array(rgb)).max(axis=1) <= 2).mean())


def test_the_price_is_asked_before_submitting(blender, triverse) -> None:
    bpy = blender
    select(add_mesh("cube", "Crate"), add_mesh("sphere", "Ball", (3, 0, 0)))
    set_prompt("painted steel", provider="TRIVERSE")
    assert bpy.ops.text_to_texture.quote() == {"FINISHED"}
    quote = bpy.context.scene.text_to_texture.quote
    # The whole selection's price: both jobs ask the same, so Triverse is asked once.
    assert quote.startswith("≈ ") and "for 2 objects" in quote and "each" in quote, quote
    assert triverse.count("POST", "/tasks/pricing/quote") == 1
    assert triverse.count("POST", "/tasks/text-to-texture") == 0  # nothing was submitted
    assert len(bpy.context.scene.text_to_texture.jobs) == 0  # no job was made
