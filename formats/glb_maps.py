"""Read the PBR maps out of a textured GLB, without decoding a single pixel.

Triverse answers with one textured GLB rather than separate map files. Its material's images
are copied byte for byte into ordinary image files the material builder loads like any other
provider's maps: a base color image, glTF's packed metallicRoughness image (G = roughness,
B = metallic; split later by a Separate Color node, never here), the normal map, and the
occlusion image when it is not the same image as metallicRoughness.

Only what a GLB carries inside itself is read (bufferViews of its BIN chunk, or data URIs); an
image that refers to a file or URL outside the GLB is refused, so a hostile model cannot make us
read or fetch anything else. File names come from the caller's stem and the sniffed image type
(never from names inside the file).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import struct
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from . import imagefile, limits
from .atomic import write_atomic
from .roles import BASE_COLOR, METALLIC_ROUGHNESS, NORMAL

log = logging.getLogger(__name__)

OCCLUSION = "occlusion"  # only when it is an image of its own (not packed into metallicRoughness)
_JSON, _BIN = 0x4E4F534A, 0x004E4942
_EXT = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp"}
MB = 1 << 20


class GlbError(ValueError):
    """The GLB cannot give us its maps; the message is one plain line."""


@dataclass
class TextureRef:
    """Where one map's pixels live in the GLB, and how the material reads them."""

    image: int  # index into gltf["images"]
    tex_coord: int = 0  # which TEXCOORD_n the map is laid out in
    transformed: bool = False  # KHR_texture_transform present (offset/scale/rotation)


@dataclass
class MaterialMaps:
    """The maps one glTF material uses, with the factors that scale them."""

    material: int
    textures: dict[str, TextureRef] = field(default_factory=dict)
    factors: dict[str, Any] = field(default_factory=dict)


@dataclass
class Extracted:
    paths: dict[str, str]  # role -> file written
    material: MaterialMaps
    notes: list[str] = field(default_factory=list)  # things the material builder should know


# --------------------------------------------------------------------------- GLB container


@dataclass
class _Glb:
    gltf: dict[str, Any]
    bin_offset: int  # file offset of the BIN chunk's data (-1: none)
    bin_length: int


def _read_container(fh: BinaryIO, size: int) -> _Glb:
    """The JSON chunk and where the BIN chunk is; the binary itself stays on disk."""
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b"glTF":
        raise GlbError("the file is not a GLB model")
    _magic, version, length = struct.unpack("<4sII", head)
    if version != 2:
        raise GlbError(f"the GLB is glTF version {version}; only version 2 is supported")
    if length > size:
        raise GlbError("the GLB is truncated")
    gltf: dict[str, Any] | None = None
    bin_offset, bin_length, pos = -1, 0, 12
    while pos + 8 <= length:
        fh.seek(pos)
        chunk_len, kind = struct.unpack("<II", fh.read(8))
        if pos + 8 + chunk_len > length:
            raise GlbError("the GLB is truncated")
        if kind == _JSON and gltf is None:
            if chunk_len > limits.MAX_GLTF_JSON:  # read nothing of a description this large
                raise GlbError(f"the model's description is {chunk_len // MB} MB, more than the "
                               f"{limits.MAX_GLTF_JSON // MB} MB a textured model needs")
            try:
                gltf = json.loads(fh.read(chunk_len).decode("utf-8"))
            except (UnicodeDecodeError, ValueError, RecursionError):
                raise GlbError("the GLB's description (JSON chunk) is corrupt") from None
        elif kind == _BIN and bin_offset < 0:
            bin_offset, bin_length = pos + 8, chunk_len
        pos += 8 + chunk_len + (-chunk_len % 4)
    if not isinstance(gltf, dict):
        raise GlbError("the GLB has no description (JSON chunk)")
    return _Glb(gltf, bin_offset, bin_length)


def _items(gltf: dict[str, Any], key: str) -> list[Any]:
    value = gltf.get(key)
    return value if isinstance(value, list) else []


def _index(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# --------------------------------------------------------------------------- material


def pick_material(gltf: dict[str, Any]) -> int:
    """The material the textured mesh uses: that of the first primitive that has one.

    A service's result normally has a single material. When there are several, the first one
    used by a mesh wins (and the caller is told), since one Blender material is built per object.
    """
    materials = _items(gltf, "materials")
    for mesh in _items(gltf, "meshes"):
        prims = mesh.get("primitives") if isinstance(mesh, dict) else None
        for prim in prims if isinstance(prims, list) else []:
            index = _index(prim.get("material")) if isinstance(prim, dict) else None
            if index is not None and index < len(materials):
                return index
    if materials:
        return 0
    raise GlbError("the model has no material")


def material_maps(gltf: dict[str, Any], material: int | None = None) -> MaterialMaps:
    """Which image each map role of a material reads, plus its factors."""
    index = pick_material(gltf) if material is None else material
    mat = _items(gltf, "materials")[index]
    if not isinstance(mat, dict):
        raise GlbError("the model's material is malformed")
    pbr = mat.get("pbrMetallicRoughness")
    pbr = pbr if isinstance(pbr, dict) else {}
    found = MaterialMaps(index)
    slots = (
        (BASE_COLOR, pbr.get("baseColorTexture")),
        (METALLIC_ROUGHNESS, pbr.get("metallicRoughnessTexture")),
        (NORMAL, mat.get("normalTexture")),
        (OCCLUSION, mat.get("occlusionTexture")),
    )
    for role, info in slots:
        ref = _texture_ref(gltf, info)
        if ref is not None:
            found.textures[role] = ref
    mr = found.textures.get(METALLIC_ROUGHNESS)
    occ = found.textures.get(OCCLUSION)
    if occ is not None and mr is not None and occ.image == mr.image:
        del found.textures[OCCLUSION]  # ORM: occlusion is the R channel of the packed image
    for name in ("baseColorFactor", "metallicFactor", "roughnessFactor"):
        if name in pbr:
            found.factors[name] = pbr[name]
    normal = mat.get("normalTexture")
    if isinstance(normal, dict) and "scale" in normal:
        found.factors["normalScale"] = normal["scale"]
    return found


def _texture_ref(gltf: dict[str, Any], info: Any) -> TextureRef | None:
    if not isinstance(info, dict):
        return None
    tex_index = _index(info.get("index"))
    textures = _items(gltf, "textures")
    if tex_index is None or tex_index >= len(textures) or not isinstance(
            textures[tex_index], dict):
        raise GlbError("the model's material refers to a texture it does not contain")
    texture = textures[tex_index]
    source = _index(texture.get("source"))
    ext = texture.get("extensions")
    if source is None and isinstance(ext, dict):
        # An image Blender can load may only be named by an extension (WebP-only textures).
        for name in ("EXT_texture_webp", "KHR_texture_basisu", "MSFT_texture_dds"):
            entry = ext.get(name)
            if isinstance(entry, dict) and _index(entry.get("source")) is not None:
                source = entry["source"]
                break
    if source is None or source >= len(_items(gltf, "images")):
        raise GlbError("the model's texture has no image")
    info_ext = info.get("extensions")
    transformed = isinstance(info_ext, dict) and "KHR_texture_transform" in info_ext
    return TextureRef(source, _index(info.get("texCoord")) or 0, transformed)


# --------------------------------------------------------------------------- image bytes


def _image_bytes(fh: BinaryIO, glb: _Glb, image: int, max_bytes: int) -> bytes:
    entry = _items(glb.gltf, "images")[image]
    if not isinstance(entry, dict):
        raise GlbError("the model's image entry is malformed")
    uri = entry.get("uri")
    if isinstance(uri, str):
        return _data_uri_bytes(uri, max_bytes)
    view_index = _index(entry.get("bufferView"))
    views = _items(glb.gltf, "bufferViews")
    if view_index is None or view_index >= len(views) or not isinstance(views[view_index], dict):
        raise GlbError("the model's image has no data")
    view = views[view_index]
    buffer = _index(view.get("buffer", 0))
    offset = _index(view.get("byteOffset", 0))
    length = _index(view.get("byteLength"))
    if buffer != 0 or glb.bin_offset < 0:
        raise GlbError("the model's image lies outside the GLB")
    if offset is None or length is None or offset + length > glb.bin_length:
        raise GlbError("the model's image data runs past the end of the GLB")
    if length > max_bytes:
        raise GlbError(f"a texture in the model is larger than {max_bytes // MB} MB")
    fh.seek(glb.bin_offset + offset)
    data = fh.read(length)
    if len(data) != length:
        raise GlbError("the GLB is truncated")
    return data


def _data_uri_bytes(uri: str, max_bytes: int) -> bytes:
    if not uri.startswith("data:"):
        # A relative file or a URL: a GLB from a service must carry its images itself, and
        # following the reference could read any file on this computer.
        raise GlbError("the model refers to an image outside itself")
    head, sep, payload = uri.partition(",")
    if not sep or not head.endswith(";base64"):
        raise GlbError("the model's embedded image is not base64 data")
    if len(payload) * 3 // 4 > max_bytes:
        raise GlbError(f"a texture in the model is larger than {max_bytes // MB} MB")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise GlbError("the model's embedded image is corrupt") from None


def _write(folder: str, stem: str, role: str, data: bytes) -> str:
    """Write atomically under a name made of our stem, the role and the sniffed type."""
    info = imagefile.image_info(data)
    if info is None or info[0] not in _EXT:
        raise GlbError(f"the model's {role.replace('_', ' ')} texture is not a PNG, JPEG or WebP")
    problem = limits.current().map_problem(info[1], info[2])
    if problem:
        raise GlbError(f"the model's {role.replace('_', ' ')} texture {problem}")
    path = os.path.join(folder, f"{stem}_{role}{_EXT[info[0]]}")
    write_atomic(path, data)
    return path


# --------------------------------------------------------------------------- entry point


def extract_maps(
    glb_path: str,
    out_dir: str,
    stem: str,
    *,
    roles: tuple[str, ...] = (BASE_COLOR, METALLIC_ROUGHNESS, NORMAL, OCCLUSION),
    max_image_bytes: int = 512 * MB,
) -> Extracted:
    """Copy the chosen material's images for `roles` into `out_dir`; base color is required.

    Raises `GlbError` (a plain line) for anything unusable, `OSError` for disk trouble.
    """
    try:
        size = os.path.getsize(glb_path)
        fh = open(glb_path, "rb")
    except OSError as exc:
        raise GlbError(f"the model file cannot be read ({exc.strerror or exc})") from None
    with fh:
        glb = _read_container(fh, size)
        maps = material_maps(glb.gltf)
        if BASE_COLOR not in maps.textures:
            raise GlbError("the model's material has no base color texture")
        os.makedirs(out_dir, exist_ok=True)
        out = Extracted({}, maps, _notes(glb.gltf, maps))
        for role in roles:
            ref = maps.textures.get(role)
            if ref is not None:
                out.paths[role] = _write(out_dir, stem, role,
                                         _image_bytes(fh, glb, ref.image, max_image_bytes))
    return out


def _notes(gltf: dict[str, Any], maps: MaterialMaps) -> list[str]:
    notes: list[str] = []
    used = {
        i for mesh in _items(gltf, "meshes") if isinstance(mesh, dict)
        for p in (mesh.get("primitives") or []) if isinstance(p, dict)
        for i in [_index(p.get("material"))] if i is not None
    }
    if len(used) > 1:
        notes.append(f"the model has {len(used)} materials; only the first one's maps are used")
    for role, ref in maps.textures.items():
        if ref.tex_coord:
            notes.append(f"the {role.replace('_', ' ')} map uses UV set {ref.tex_coord}")
        if ref.transformed:
            notes.append(f"the {role.replace('_', ' ')} map has a texture transform")
    for note in notes:
        log.info("GLB maps: %s", note)
    return notes
