"""hroffice (work in progress)."""
