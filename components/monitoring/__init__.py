"""monitoring components."""
