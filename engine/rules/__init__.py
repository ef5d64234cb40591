"""rules (work in progress)."""
