"""Texture providers: one module per service behind `base.Provider`. No bpy here."""
