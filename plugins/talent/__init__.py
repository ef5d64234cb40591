"""talent (work in progress)."""
