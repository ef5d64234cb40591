"""workflows (work in progress)."""
