"""One module per resource family; each resource is importable and testable alone."""
