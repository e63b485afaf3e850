"""The names of the files a result is made of: map roles and returned meshes.

Every layer speaks these names: a provider returns {role: path}, the material builder wires
each role to its socket.
"""

from __future__ import annotations

BASE_COLOR = "base_color"
ROUGHNESS = "roughness"
METALLIC = "metallic"
NORMAL = "normal"
HEIGHT = "height"
MAP_ROLES = (BASE_COLOR, ROUGHNESS, METALLIC, NORMAL, HEIGHT)
# glTF's packed map: G channel = roughness, B channel = metallic (wired through Separate Color).
METALLIC_ROUGHNESS = "metallic_roughness"
# A GLB whose TEXCOORD_0 is the UV layout the maps belong to, same surface as the artist's mesh
# (Meshy with its own UVs).
UV_MESH = "uv_mesh"
# A GLB with the provider's own geometry and UVs (Triverse may remesh).
RESULT_MESH = "result_mesh"
# Extra samples of a 2D provider: f"{role}{VARIANT_SEP}{n}" for n >= 1 (sample 0 is plain).
VARIANT_SEP = "@"
