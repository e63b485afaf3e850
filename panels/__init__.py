"""Sidebar panels: draw only."""
