"""Imported first by the CLI: msgspec without typing_extensions.

msgspec tries ``typing_extensions`` before ``typing`` for ``get_type_hints``; typing_extensions imports inspect,
ast, dis and tokenize, about a tenth of the start-up of a `report` (~12 ms here). On Python 3.11+ ``typing`` has
all msgspec takes from it for tokentop's types. The block is lifted as soon as msgspec is in: a later
``import typing_extensions`` (Textual's, or a user's) works as usual. Nothing happens if either is already loaded.
"""

from __future__ import annotations

import sys

if "msgspec" not in sys.modules and "typing_extensions" not in sys.modules:
    sys.modules["typing_extensions"] = None  # type: ignore[assignment]  # import of it raises ImportError
    try:
        import msgspec  # noqa: F401
    finally:
        del sys.modules["typing_extensions"]
