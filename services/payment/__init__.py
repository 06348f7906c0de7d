"""The payment service (entry point: app.py)."""
