"""step2hr (work in progress)."""
