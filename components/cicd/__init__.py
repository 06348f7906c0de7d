"""cicd components."""
