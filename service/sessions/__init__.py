"""Session stores: one small async interface, an in-process implementation."""
