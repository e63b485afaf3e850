"""Blender data helpers: export, UVs, images, materials, scene records, the main-thread pump."""
