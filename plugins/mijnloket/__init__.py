"""mijnloket (work in progress)."""
