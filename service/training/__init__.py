"""Rebuild the shipped models: `python -m service train reverse|memory --out DIR`."""
