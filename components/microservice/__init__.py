"""microservice components."""
