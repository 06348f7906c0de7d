"""Tests of the e-commerce services (see ../README.md)."""
