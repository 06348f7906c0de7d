"""End-to-end harness: real tools (built by e2e/tools/*.sh) against a simulated cluster."""
