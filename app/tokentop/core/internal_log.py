"""The app's own per-call log: ``<data_root>/agents/<session>/llm_costs.jsonl`` rows into Calls."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from .records import CLOUD, INTERNAL, LOCAL, Call, CostUsd, Tokens
from .warnings import INVALID_UTF8, NULL_TOKENS, UNPARSABLE, Warnings

LOG_NAME = "llm_costs.jsonl"
BOM = b"\xef\xbb\xbf"


class InternalRow(msgspec.Struct, omit_defaults=True):
    """One row of ``llm_costs.jsonl`` (FORMATS.md §2); every field optional on read."""

    timestamp: datetime
    model: str | None = None
    task_id: str | None = None
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cache_read_tokens: Tokens | None = None
    cache_creation_tokens: Tokens | None = None
    estimated_cost_usd: CostUsd | None = None
    cached: bool | None = None
    execution_mode: str | None = None
    priced_with: str | None = None
    caller: list[str] | None = None
    backend: str | None = None
    trace_id: str | None = None
    project: str | None = None


_decoder = msgspec.json.Decoder(InternalRow)


def agents_dir(data_root: Path) -> Path:
    """Where the per-session logs live."""
    return Path(data_root) / "agents"


def discover_files(data_root: Path, stats: dict[str, os.stat_result] | None = None) -> list[tuple[str, int]]:
    """Every non-empty ``agents/<session>/llm_costs.jsonl`` with its size (``stats``: receives each stat)."""
    out: list[tuple[str, int]] = []
    try:
        it = os.scandir(agents_dir(data_root))
    except OSError:
        return out
    with it:
        for e in it:
            if not e.is_dir():
                continue
            p = os.path.join(e.path, LOG_NAME)
            try:
                st = os.stat(p)
            except OSError:
                continue
            if st.st_size:
                out.append((p, st.st_size))
                if stats is not None:
                    stats[p] = st
    out.sort()
    return out


def _epoch(ts: datetime) -> float:
    if ts.tzinfo is None:  # legacy rows without an offset are UTC
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.timestamp()


def call_of_row(row: InternalRow, session: str, default_project: str, warnings: Warnings, path: str = "") -> Call:
    """A Call from one row: cost as logged, NULL or missing token fields read as 0 (and counted)."""
    counts = (row.input_tokens, row.output_tokens, row.cache_creation_tokens, row.cache_read_tokens)
    if None in counts:
        warnings[NULL_TOKENS] += 1
    mode = LOCAL if (row.execution_mode or "").lower() == LOCAL else CLOUD
    return Call(
        INTERNAL,
        _epoch(row.timestamp),
        row.model or "(unknown)",
        row.project or default_project,
        session,
        mode,
        counts[0] or 0,
        counts[1] or 0,
        counts[2] or 0,
        counts[3] or 0,
        row.estimated_cost_usd,
        None,
        row.task_id or "(none)",
        0,
        0,
        "",
        "",
        path,
    )


def parse_lines(buf: bytes, path: str, default_project: str, warnings: Warnings, base: int = 0) -> list[Call]:
    """Calls from complete ``\\n``-terminated lines of one ``llm_costs.jsonl``; bad lines skipped and counted.

    ``base`` is the file offset of ``buf``: each row is identified by its line's offset.
    """
    if buf.startswith(BOM):
        buf = buf[3:]
        base += 3
    session = os.path.basename(os.path.dirname(path))
    out: list[Call] = []
    pos = 0
    for raw in buf.split(b"\n"):
        start = pos
        pos += len(raw) + 1
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if not line.strip():
            continue
        try:
            row = _decoder.decode(line)
        except (msgspec.DecodeError, UnicodeDecodeError):
            try:
                row = _decoder.decode(line.decode("utf-8", errors="replace").encode())
            except (msgspec.DecodeError, UnicodeDecodeError):
                warnings[UNPARSABLE] += 1
                continue
            warnings[INVALID_UTF8] += 1
        call = call_of_row(row, session, default_project, warnings, path)
        call.offset = base + start
        out.append(call)
    return out
