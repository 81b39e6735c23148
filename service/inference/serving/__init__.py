"""Serving a model: the engine's async calls, batchers, the compute thread, job slicing."""
