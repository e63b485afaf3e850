"""DRESSX end to end in real Blender: the mesh served by our local server, the result by webhook."""

from __future__ import annotations

import pytest

from emulators.base import expected_pixels, marker_pixels
from t2t_testing import add_mesh, image_array, installed, linked_image, select, set_prompt


def center_and_corner(image):  # type: ignore[no-untyped-def]
    arr = image_array(image)
    h, w = arr.shape[:2]
    return tuple(arr[h // 2, w // 2, :3]), tuple(arr[1, 1, :3])


def test_dressx_textures_several_objects(blender, dressx) -> None:
    bpy = blender
    objs = [add_mesh("cube", "Crate"), add_mesh("sphere", "Ball", (3, 0, 0)),
            add_mesh("cylinder", "Can", (6, 0, 0))]
    select(*objs)
    set_prompt("denim jacket fabric", provider="DRESSX", dressx_steps=12)
    assert bpy.ops.text_to_texture.generate() == {"FINISHED"}
    recs = bpy.context.scene.text_to_texture.jobs
    assert [r.state for r in recs] == ["applied"] * 3, [r.message for r in recs]
    for obj in objs:
        mat = obj.active_material
        for socket, role in (("Base Color", "base_color"), ("Roughness", "roughness"),
                             ("Metallic", "metallic"), ("Normal", "normal")):
            image = linked_image(mat, socket).image
            assert center_and_corner(image) == (expected_pixels(role), marker_pixels(role))
    creates = dressx.recorded("POST", "/v2/pipeline/text-to-texture/")
    assert len(creates) == 3
    for rec in creates:
        assert rec.body["prompt"] == "denim jacket fabric"
        assert rec.body["num_inference_steps"] == 12
        assert rec.body["mesh_url"].startswith("http://127.0.0.1:")
        assert rec.body["mesh_url"].endswith("/mesh.obj")
        assert "/w/" in rec.body["result_url"]
    assert recs[0].info.startswith("DRESSX order ")
    assert installed("net.local_server").current() is None  # stopped with the last job


def test_without_a_public_url_nothing_is_sent(blender, dressx, monkeypatch) -> None:
    bpy = blender
    monkeypatch.delenv("DRESSX_PUBLIC_URL")
    crate = add_mesh("cube", "Crate")
    set_prompt("wool", provider="DRESSX")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [crate])
    (line,) = run.batch.skipped
    assert line.startswith("DRESSX sends its result to a public URL that reaches this computer")
    assert "DRESSX_PUBLIC_URL" in line
    assert dressx.count() == 0


@pytest.mark.parametrize(("knob", "state", "text"), [
    ("never", "failed", "did not report back"),
    ("failure", "failed", ""),
    ("duplicate", "applied", ""),
])
def test_webhook_faults(blender, dressx, monkeypatch, knob: str, state: str, text: str) -> None:
    bpy = blender
    if knob == "never":
        dressx.webhook = "never"
        monkeypatch.setenv("DRESSX_TIMEOUT_S", "1")
    elif knob == "failure":
        dressx.final_status = "failure"
    else:
        dressx.webhook = "duplicate"
    crate = add_mesh("cube", "Crate")
    set_prompt("wool", provider="DRESSX")
    run = installed("blender.batch").BatchRun(bpy.context.scene, [crate])
    run.run_to_end()
    rec = bpy.context.scene.text_to_texture.jobs[0]
    assert rec.state == state, rec.message
    assert text in rec.message
    if knob == "never":
        assert "(order " in rec.message  # kept so the artist can look it up
