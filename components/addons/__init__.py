"""addons components."""
