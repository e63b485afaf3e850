"""Operators: gather context, call the engine, report one clear line."""
