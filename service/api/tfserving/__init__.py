"""TF Serving's REST API routes."""
