"""Thin HTTP routers: translate requests, delegate to the data plane."""
