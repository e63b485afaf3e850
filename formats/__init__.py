"""File formats, without Blender: meshes (GLB/OBJ), images (PNG/JPEG/WebP), maps inside a GLB,
and files written whole."""
