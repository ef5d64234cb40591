"""recruitment (work in progress)."""
