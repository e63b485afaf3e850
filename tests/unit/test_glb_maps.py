"""Reading a textured GLB's maps out of it, byte for byte, checked by pixel content."""

from __future__ import annotations

import base64
import copy
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from emulators.base import expected_pixels, guard_loopback, map_png, marker_pixels
from emulators.glb import cube_glb, read_glb, write_glb
from emulators.triverse import MR_PIXELS, mr_png, textured_glb
from text_to_texture.formats import glb_maps
from text_to_texture.formats.glb_maps import OCCLUSION, GlbError, extract_maps
from text_to_texture.formats.imagefile import image_info, read_png

IMAGES = {"base_color": map_png("base_color"), "metallic_roughness": mr_png(),
          "normal": map_png("normal")}
# The smallest header image_info recognises as a JPEG (SOI, then a SOF0 frame of 4×3): the maps
# are copied, never decoded, so sniffable bytes are all a JPEG test needs.
FAKE_JPEG = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x03\x00\x04\x03" + b"\x00" * 9 + b"\xff\xd9"


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    return guard_loopback(monkeypatch)


def write(tmp_path: Path, glb: bytes, name: str = "result.glb") -> str:
    path = tmp_path / name
    path.write_bytes(glb)
    return str(path)


def edited(glb: bytes, edit: Any) -> bytes:
    gltf, binary = read_glb(glb)
    gltf = copy.deepcopy(gltf)
    edit(gltf)
    return write_glb(gltf, binary)


def center_and_corner(path: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    arr = read_png(path)
    h, w = arr.shape[:2]
    return tuple(int(v) for v in arr[h // 2, w // 2][:3]), tuple(int(v) for v in arr[0, 0][:3])


def test_each_map_comes_out_byte_for_byte(tmp_path: Path) -> None:
    glb = write(tmp_path, textured_glb(cube_glb(), IMAGES))
    got = extract_maps(glb, str(tmp_path / "maps"), "Cube_ab12")
    assert set(got.paths) == {"base_color", "metallic_roughness", "normal"}  # ORM: no occlusion
    for role, path in got.paths.items():
        assert Path(path).name == f"Cube_ab12_{role}.png"  # our names, not the GLB's "../../"
        assert Path(path).read_bytes() == IMAGES[role]
    for role in ("base_color", "normal"):
        assert center_and_corner(got.paths[role]) == (expected_pixels(role), marker_pixels(role))
    mr = read_png(got.paths["metallic_roughness"])
    fill, mark = MR_PIXELS
    assert tuple(mr[32, 32]) == fill and tuple(mr[0, 0]) == mark
    # glTF packing: G = roughness, B = metallic — left packed for a Separate Color node.
    assert mr[32, 32, 1] == expected_pixels("roughness")[0]
    assert mr[32, 32, 2] == expected_pixels("metallic")[0]
    assert mr[0, 0, 1] == marker_pixels("roughness")[0]
    assert mr[0, 0, 2] == marker_pixels("metallic")[0]
    assert got.material.factors == {"metallicFactor": 1.0, "roughnessFactor": 1.0}
    assert got.notes == []
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(
        f"Cube_ab12_{r}.png" for r in got.paths)  # no temp files, nothing else
    assert not list(tmp_path.rglob("*evil*"))


def test_data_uri_images_and_a_subset_of_roles(tmp_path: Path) -> None:
    glb = write(tmp_path, textured_glb(cube_glb(), IMAGES, data_uris=True))
    got = extract_maps(glb, str(tmp_path), "o", roles=("base_color",))
    assert list(got.paths) == ["base_color"]
    assert Path(got.paths["base_color"]).read_bytes() == IMAGES["base_color"]


def test_the_extension_follows_the_bytes_not_the_mime_type(tmp_path: Path) -> None:
    assert image_info(FAKE_JPEG) == ("JPEG", 4, 3)
    images = dict(IMAGES, base_color=FAKE_JPEG)  # still labelled image/png in the GLB
    got = extract_maps(write(tmp_path, textured_glb(cube_glb(), images)), str(tmp_path), "o")
    assert Path(got.paths["base_color"]).name == "o_base_color.jpg"
    assert Path(got.paths["base_color"]).read_bytes() == FAKE_JPEG


def _separate_occlusion(gltf: dict[str, Any]) -> None:
    gltf["images"].append({"uri": "data:image/png;base64,"
                           + base64.b64encode(map_png("height")).decode()})
    gltf["textures"].append({"source": len(gltf["images"]) - 1})
    gltf["materials"][-1]["occlusionTexture"] = {"index": len(gltf["textures"]) - 1}


def test_a_separate_occlusion_image_is_extracted_too(tmp_path: Path) -> None:
    glb = edited(textured_glb(cube_glb(), IMAGES), _separate_occlusion)
    got = extract_maps(write(tmp_path, glb), str(tmp_path), "o")
    assert center_and_corner(got.paths[OCCLUSION]) == (expected_pixels("height"),
                                                       marker_pixels("height"))


def test_notes_for_uv_sets_transforms_and_several_materials(tmp_path: Path) -> None:
    def edit(gltf: dict[str, Any]) -> None:
        mat = gltf["materials"][-1]
        mat["normalTexture"]["texCoord"] = 1
        mat["pbrMetallicRoughness"]["baseColorTexture"]["extensions"] = {
            "KHR_texture_transform": {"scale": [2, 2]}}
        mat["pbrMetallicRoughness"]["baseColorFactor"] = [1, 0.5, 0.5, 1]
        mat["normalTexture"]["scale"] = 0.5
        gltf["materials"].append({"name": "other"})
        prims = gltf["meshes"][0]["primitives"]
        prims.append(dict(prims[0], material=len(gltf["materials"]) - 1))

    got = extract_maps(write(tmp_path, edited(textured_glb(cube_glb(), IMAGES), edit)),
                       str(tmp_path), "o")
    assert got.material.textures["normal"].tex_coord == 1
    assert got.material.textures["base_color"].transformed
    assert got.material.factors["baseColorFactor"] == [1, 0.5, 0.5, 1]
    assert got.material.factors["normalScale"] == 0.5
    assert any("2 materials" in n for n in got.notes)
    assert any("normal map uses UV set 1" in n for n in got.notes)
    assert any("texture transform" in n for n in got.notes)


def test_the_first_used_material_wins(tmp_path: Path) -> None:
    def edit(gltf: dict[str, Any]) -> None:
        gltf["materials"].insert(0, {"name": "unused, untextured"})
        for prim in gltf["meshes"][0]["primitives"]:
            prim["material"] = 1

    got = extract_maps(write(tmp_path, edited(textured_glb(cube_glb(), IMAGES), edit)),
                       str(tmp_path), "o")
    assert got.material.material == 1 and "base_color" in got.paths


def test_a_webp_only_texture_is_found_through_its_extension(tmp_path: Path) -> None:
    webp = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x03\x00\x00\x00" + b"\x00" * 8

    def edit(gltf: dict[str, Any]) -> None:
        gltf["images"].append({"uri": "data:image/webp;base64," + base64.b64encode(webp).decode()})
        gltf["textures"].append({"extensions": {"EXT_texture_webp": {
            "source": len(gltf["images"]) - 1}}})
        gltf["materials"][-1]["pbrMetallicRoughness"]["baseColorTexture"] = {
            "index": len(gltf["textures"]) - 1}

    got = extract_maps(write(tmp_path, edited(textured_glb(cube_glb(), IMAGES), edit)),
                       str(tmp_path), "o")
    assert Path(got.paths["base_color"]).name == "o_base_color.webp"


# --------------------------------------------------------------------------- refusals


def _no_base_color(gltf: dict[str, Any]) -> None:
    del gltf["materials"][-1]["pbrMetallicRoughness"]["baseColorTexture"]


def _external_image(gltf: dict[str, Any]) -> None:
    gltf["images"][0] = {"uri": "../../../../etc/passwd"}


def _url_image(gltf: dict[str, Any]) -> None:
    gltf["images"][0] = {"uri": "https://example.com/a.png"}


def _past_the_end(gltf: dict[str, Any]) -> None:
    gltf["bufferViews"][gltf["images"][0]["bufferView"]]["byteLength"] = 10**9


def _missing_texture(gltf: dict[str, Any]) -> None:
    gltf["materials"][-1]["normalTexture"]["index"] = 99


def _ktx2(gltf: dict[str, Any]) -> None:
    ktx = b"\xabKTX 20\xbb\r\n\x1a\n" + b"\x00" * 64
    gltf["images"][0] = {"uri": "data:image/ktx2;base64," + base64.b64encode(ktx).decode()}


def _no_materials(gltf: dict[str, Any]) -> None:
    gltf.pop("materials")
    for prim in gltf["meshes"][0]["primitives"]:
        prim.pop("material")


@pytest.mark.parametrize(("edit", "fragment"), [
    (_no_base_color, "no base color texture"),
    (_external_image, "refers to an image outside itself"),
    (_url_image, "refers to an image outside itself"),
    (_past_the_end, "runs past the end of the GLB"),
    (_missing_texture, "refers to a texture it does not contain"),
    (_ktx2, "base color texture is not a PNG, JPEG or WebP"),
    (_no_materials, "has no material"),
])
def test_unusable_models_are_one_plain_line(tmp_path: Path, edit: Any, fragment: str) -> None:
    glb = write(tmp_path, edited(textured_glb(cube_glb(), IMAGES), edit))
    with pytest.raises(GlbError) as err:
        extract_maps(glb, str(tmp_path / "maps"), "o")
    assert fragment in str(err.value) and "\n" not in str(err.value)
    assert not list((tmp_path / "maps").glob("*")) if (tmp_path / "maps").exists() else True


@pytest.mark.parametrize(("data", "fragment"), [
    (b"<html>not found</html>", "not a GLB"),
    (b"glTF" + struct.pack("<II", 2, 10**6) + b"\x00" * 20, "truncated"),
    (b"glTF" + struct.pack("<II", 1, 20) + b"\x00" * 8, "version 1"),
    (b"glTF" + struct.pack("<II", 2, 24) + struct.pack("<II", 4, 0x4E4F534A) + b"{{{{",
     "corrupt"),
])
def test_broken_files(tmp_path: Path, data: bytes, fragment: str) -> None:
    with pytest.raises(GlbError, match=fragment):
        extract_maps(write(tmp_path, data), str(tmp_path), "o")
    with pytest.raises(GlbError, match="cannot be read"):
        extract_maps(str(tmp_path / "missing.glb"), str(tmp_path), "o")


def test_an_oversized_texture_is_refused(tmp_path: Path) -> None:
    big = {**IMAGES, "base_color": map_png("base_color", 256)}
    glb = write(tmp_path, textured_glb(cube_glb(), big))
    with pytest.raises(GlbError, match="larger than"):
        extract_maps(glb, str(tmp_path), "o", max_image_bytes=100)
    assert glb_maps.material_maps(read_glb(Path(glb).read_bytes())[0]).material == 0


def test_textures_keep_their_exact_bytes_at_every_size(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    noisy = rng.integers(0, 255, 4093, dtype=np.uint8).tobytes()  # odd length: padding
    images = {**IMAGES, "normal": IMAGES["normal"] + noisy}  # trailing bytes after IEND
    got = extract_maps(write(tmp_path, textured_glb(cube_glb(), images)), str(tmp_path), "o")
    assert Path(got.paths["normal"]).read_bytes() == images["normal"]
    assert Path(got.paths["metallic_roughness"]).read_bytes() == IMAGES["metallic_roughness"]
