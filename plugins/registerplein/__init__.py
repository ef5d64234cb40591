"""registerplein (work in progress)."""
