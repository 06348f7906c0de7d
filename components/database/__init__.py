"""database components."""
