"""Blender data, on the main thread only: the jobs' engine and who drives it, batches, applying
results, scene records, recovery, meshes as arrays, UVs, images, materials, and each provider's
surface (its settings, panel options and preferences)."""
