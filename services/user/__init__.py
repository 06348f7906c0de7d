"""The user service (entry point: app.py)."""
