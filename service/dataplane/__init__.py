"""Request logic that knows nothing of HTTP: validate, compute, shape the answer."""
