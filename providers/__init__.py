"""Texture providers without Blender: one module per service behind `base.Provider`, the shared
cloud base and the registry."""
