"""The one reader of decimal numbers in headers and paths (a version, a byte count)."""

from __future__ import annotations


def decimal(text: str | bytes, max_digits: int = 18) -> int | None:
    """`text` as a non-negative integer, or None if it is not 1 to `max_digits` ASCII
    digits. `str.isdigit()` alone is not enough: it is true for '²', which `int()`
    refuses, and `int()` refuses strings over 4,300 digits; 18 digits fit an int64."""
    if not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)
