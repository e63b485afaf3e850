"""The glTF 2.0 binary (GLB) numbers the mesh writer and the mesh reader share."""

GLB_MAGIC = b"glTF"
JSON_CHUNK, BIN_CHUNK = 0x4E4F534A, 0x004E4942  # chunk types
FLOAT, UBYTE, USHORT, UINT = 5126, 5121, 5123, 5125  # accessor componentTypes
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963  # bufferView targets
COMPONENTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}
DTYPES = {5120: "<i1", 5121: "<u1", 5122: "<i2", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
TRIANGLES = 4  # a primitive's mode
