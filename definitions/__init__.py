"""Shipped YAML definitions (read with importlib.resources)."""
