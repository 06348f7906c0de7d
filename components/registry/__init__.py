"""registry components."""
