"""scheduling (work in progress)."""
