"""The Call record: one priced (or unpriced) LLM call from either source."""

from __future__ import annotations

from typing import Annotated

import msgspec

#: The most tokens of one kind one call can report (a billion: far beyond any context window). A larger or negative
#: count is a damaged line, counted as unparsable: it would swamp the totals (or, past 2**64, not fit a counter).
MAX_TOKENS = 1_000_000_000
#: The most one logged call can cost (USD): a larger or negative logged cost is a damaged line too.
MAX_CALL_COST_USD = 1_000_000.0
#: A token count as read from a log line (see `MAX_TOKENS`).
Tokens = Annotated[int, msgspec.Meta(ge=0, le=MAX_TOKENS)]
#: A logged cost (see `MAX_CALL_COST_USD`).
CostUsd = Annotated[float, msgspec.Meta(ge=0, le=MAX_CALL_COST_USD)]

CLAUDE_CODE = "claude_code"
INTERNAL = "internal"
SOURCES = (CLAUDE_CODE, INTERNAL)
CLOUD = "cloud"
LOCAL = "local"
MODES = (CLOUD, LOCAL)


class Call(msgspec.Struct, array_like=True, gc=False):
    """One LLM call.

    ``key`` is the Claude Code dedupe key (``message.id``); internal rows have none and are never merged.
    ``cost`` is ``None`` when the model has no known price ("unpriced"), never an invented 0.
    ``cache_creation_tokens`` is all cache writes; ``cache_write_1h`` is the 1-hour part of them.
    """

    source: str
    ts: float  # UTC epoch seconds
    model: str
    project: str
    session: str
    mode: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    cost: float | None
    key: str | None = None
    task: str = ""
    cache_write_1h: int = 0
    web_search_requests: int = 0
    speed: str = ""
    geo: str = ""
    file: str = ""
    offset: int = -1  # byte offset of the line in ``file`` (identifies calls without a key)

    def ledger_key(self) -> str:
        """Primary key in the ledger: the dedupe key, else the line's place in its file."""
        return self.key if self.key is not None else f"{self.file}@{self.offset}"

    def tokens(self) -> int:
        """All tokens of the call, cache included."""
        return self.input_tokens + self.output_tokens + self.cache_creation_tokens + self.cache_read_tokens
