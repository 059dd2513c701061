"""Counters for input we could not use: visible in the status bar and in `warnings` of `report --json`."""

from __future__ import annotations

from collections import Counter

#: Lines that are not complete JSON objects (malformed, wrong types, truncated); skipped.
UNPARSABLE = "unparsable_lines"
#: Lines with invalid UTF-8 inside a string: repaired with U+FFFD and still counted.
INVALID_UTF8 = "invalid_utf8_lines"
#: Internal rows with a NULL or missing token field (read as 0).
NULL_TOKENS = "null_token_fields"
#: Files that could not be opened or read.
UNREADABLE_FILES = "unreadable_files"


class Warnings(Counter[str]):
    """Named counters; merged across workers with ``+=``."""

    def as_dict(self) -> dict[str, int]:
        """All known counters (zero included) plus any others, for JSON output."""
        out = {UNPARSABLE: 0, INVALID_UTF8: 0, NULL_TOKENS: 0, UNREADABLE_FILES: 0}
        out.update(self)
        return out
