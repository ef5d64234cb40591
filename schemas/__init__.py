"""Shipped JSON Schemas (read with importlib.resources)."""
