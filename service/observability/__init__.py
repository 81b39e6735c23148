"""What the service says about itself: logs, metrics, the request context, the stderr relay."""
