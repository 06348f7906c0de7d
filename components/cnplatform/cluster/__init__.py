"""cluster components."""
