"""permissions (work in progress)."""
