"""mesh components."""
