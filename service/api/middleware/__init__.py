"""What every request passes through: API keys, origins, the body limit, the observer
(request ids, metrics, the access log)."""
