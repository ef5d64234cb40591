"""store (work in progress)."""
