"""decisions (work in progress)."""
