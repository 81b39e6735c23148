"""The OpenAPI document and the interactive pages that show it, offline."""
