"""Request bodies in (inflated, parsed, off the event loop when large) and answers out
(serialised once, large ones in pieces)."""
