"""The order service (entry point: app.py)."""
