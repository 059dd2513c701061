"""Imported first by the CLI: modules that a dependency imports only if it can, left out while it is imported.

msgspec tries ``typing_extensions`` before ``typing`` for ``get_type_hints``; typing_extensions imports inspect,
ast, dis and tokenize, about a tenth of the start-up of a `report` (~12 ms here). On Python 3.11+ ``typing`` has
all msgspec takes from it for tokentop's types. The block is lifted as soon as msgspec is in: a later
``import typing_extensions`` (Textual's, or a user's) works as usual. Nothing happens if either is already loaded.

The TUI imports Textual, and so asyncio, `without` ``ssl`` (`cli.cmd_tui`): asyncio imports it only if it can, for
TLS transports the app never opens (~10 ms of the first frame).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def without(name: str) -> Iterator[None]:
    """Inside the block, ``import name`` raises ImportError (unless it is loaded already); after it, it works."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]  # what makes an import of it raise ImportError
    try:
        yield
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


if "msgspec" not in sys.modules:
    with without("typing_extensions"):
        import msgspec  # noqa: F401
