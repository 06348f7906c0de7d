"""The product service (entry point: app.py)."""
