"""Triverse end to end in real Blender, through the installed zip, against its emulator."""

from __future__ import annotations

from emulators.base import expected_pixels, marker_pixels
from emulators.triverse import MR_PIXELS
from t2t_testing import add_mesh, image_array, linked_image, select, set_prompt


def center_and_corner(image):  # type: ignore[no-untyped-def]
    arr = image_array(image)
    h, w = arr.shape[:2]
    return tuple(arr[h // 2, w // 2, :3]), tuple(arr[1, 1, :3])


def test_triverse_textures_objects_and_gives_them_its_mesh(blender, triverse) -> None:
    bpy = blender
    crate = add_mesh("cube", "Crate")
    ball = add_mesh("sphere", "Ball", (3, 0, 0))
    ball.modifiers.new("Bevel", "BEVEL")
    old_crate_mesh, old_ball_mesh = crate.data, ball.data
    crate_verts = len(crate.data.vertices)
    select(crate, ball)
    set_prompt("painted steel", provider="TRIVERSE", resolution="2048")
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}

    recs = bpy.context.scene.text_to_texture.jobs
    assert [r.state for r in recs] == ["applied", "applied"], [r.message for r in recs]
    for obj, old in ((crate, old_crate_mesh), (ball, old_ball_mesh)):
        mat = obj.active_material
        assert mat.name.startswith(f"T2T {obj.name}")
        base = linked_image(mat, "Base Color").image
        assert center_and_corner(base) == (expected_pixels("base_color"),
                                           marker_pixels("base_color"))
        normal = linked_image(mat, "Normal").image
        assert center_and_corner(normal) == (expected_pixels("normal"), marker_pixels("normal"))
        # The packed glTF map goes through Separate Color: G -> Roughness, B -> Metallic.
        tree = mat.node_tree
        bsdf = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeBsdfPrincipled")
        rough_link = bsdf.inputs["Roughness"].links[0]
        metal_link = bsdf.inputs["Metallic"].links[0]
        split = rough_link.from_node
        assert split.bl_idname == "ShaderNodeSeparateColor" and split == metal_link.from_node
        assert (rough_link.from_socket.name, metal_link.from_socket.name) == ("Green", "Blue")
        packed = split.inputs["Color"].links[0].from_node.image
        assert packed.colorspace_settings.is_data
        assert center_and_corner(packed) == (MR_PIXELS[0], MR_PIXELS[1])
        # The object now has Triverse's own mesh and UVs; its own mesh is kept in the file.
        assert obj.data is not old and old.use_fake_user and old.name in bpy.data.meshes
        assert obj.data.name == f"{old.name} (Triverse)"
        assert [u.name for u in obj.data.uv_layers] == ["Triverse_UV"]
        uvnode = next(n for n in tree.nodes if n.bl_idname == "ShaderNodeUVMap")
        assert uvnode.uv_map == "Triverse_UV"
    assert len(crate.data.vertices) != crate_verts  # a different topology came back
    assert "Bevel" in ball.modifiers  # the object keeps its modifiers
    assert {o.name for o in bpy.data.objects} == {"Crate", "Ball"}  # import cleaned up
    assert len(triverse.recorded("POST", "/upload/model")) == 2


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
