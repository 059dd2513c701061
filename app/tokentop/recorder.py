"""Recording calls from your own app: ``tokentop.record(...)``, ``tokentop.record_response(...)`` and ``tokentop log``.

Rows go to ``<data_root>/agents/<session>/llm_costs.jsonl`` in the app log format (FORMATS.md §2), one
``write(2)`` of a whole line on an ``O_APPEND`` descriptor, so concurrent writers never tear or interleave lines.
Rate-limit headers update ``<data_root>/runtime/rate_limits.json`` by atomic replace under a file lock.
Works without the anthropic package: responses are read by attribute or key.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .core.files import write_atomic
from .core.internal_log import LOG_NAME
from .core.rate_limits import FILE_NAME as RATE_LIMITS_FILE
from .core.records import MAX_CALL_COST_USD, MAX_TOKENS

PRICED_WITH = "tokentop"
_process_session: str | None = None


def default_session() -> str:
    """One session per process, named like the app's own: ``YYYYMMDD-<8 hex>``."""
    global _process_session
    if _process_session is None:
        _process_session = f"{datetime.now().strftime('%Y%m%d')}-{secrets.token_hex(4)}"
    return _process_session


def _data_root(data_root: str | Path | None) -> Path:
    if data_root is not None:
        return Path(data_root)
    from .config import default_data_root

    return default_data_root()


def _price(model: str, ts: float, input_tokens: int, write_5m: int, write_1h: int, read: int,
           output: int) -> float | None:
    from .config import cache_dir
    from .core.pricing import PriceBook

    return PriceBook(cache_dir=cache_dir()).cost(model, ts, input_tokens, write_5m, write_1h, read, output)


def record(
    model: str,
    input_tokens: int,
    output_tokens: int,
    *,
    cache_read_tokens: int = 0,
    cache_creation_tokens: int = 0,
    cache_write_1h_tokens: int = 0,
    cost_usd: float | None = None,
    session: str | None = None,
    mode: str = "cloud",
    task: str | None = None,
    project: str | None = None,
    cached: bool = False,
    caller: list[str] | None = None,
    backend: str | None = None,
    trace_id: str | None = None,
    data_root: str | Path | None = None,
    when: datetime | None = None,
) -> dict[str, Any]:
    """Append one call to the app log and return the row written.

    Args:
        model: the model id.
        input_tokens: uncached input tokens.
        output_tokens: output tokens.
        cache_read_tokens: cache reads.
        cache_creation_tokens: all cache writes (5-minute and 1-hour).
        cache_write_1h_tokens: the 1-hour part of the writes (priced at the 1-hour rate).
        cost_usd: the cost as you computed it; None = priced by tokentop (null when the model has no price;
            0 for local or cached calls).
        session: the session folder (default: one per process).
        mode: ``cloud`` or ``local``.
        task: what the call was for (``task_id``).
        project: the project the call belongs to.
        cached: True when the call was served from a cache and not billed.
        caller: call sites.
        backend: which backend served it.
        trace_id: a trace id to correlate with.
        data_root: the app data root (default: ``TOKENTOP_DATA_ROOT`` or tokentop's data dir).
        when: the call's time (default: now).

    Returns:
        The row as written.
    """
    if mode not in ("cloud", "local"):
        raise ValueError(f"mode must be cloud or local, not {mode!r}")
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                        ("cache_read_tokens", cache_read_tokens), ("cache_creation_tokens", cache_creation_tokens),
                        ("cache_write_1h_tokens", cache_write_1h_tokens)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TOKENS:
            raise ValueError(f"{name} must be a whole number from 0 to {MAX_TOKENS:,}, not {value!r}")
    if cost_usd is not None and (isinstance(cost_usd, bool) or not isinstance(cost_usd, int | float)
                                 or not 0 <= cost_usd <= MAX_CALL_COST_USD):  # NaN fails it too
        raise ValueError(f"cost_usd must be a number from 0 to {MAX_CALL_COST_USD:,.0f}, not {cost_usd!r}")
    if cache_write_1h_tokens > cache_creation_tokens:
        raise ValueError("cache_write_1h_tokens is part of cache_creation_tokens and cannot exceed it")
    at = (when or datetime.now(timezone.utc)).astimezone()
    if cost_usd is None:
        if mode == "local" or cached:
            cost_usd = 0.0
        else:
            cost_usd = _price(model, at.timestamp(), input_tokens, cache_creation_tokens - cache_write_1h_tokens,
                              cache_write_1h_tokens, cache_read_tokens, output_tokens)
    row: dict[str, Any] = {
        "timestamp": at.isoformat(), "model": model, "task_id": task or "", "input_tokens": input_tokens,
        "output_tokens": output_tokens, "cache_read_tokens": cache_read_tokens,
        "cache_creation_tokens": cache_creation_tokens, "estimated_cost_usd": cost_usd, "cached": cached,
        "execution_mode": mode, "priced_with": PRICED_WITH, "caller": list(caller or []),
        "backend": backend or ("local" if mode == "local" else "anthropic"),
    }
    if trace_id:
        row["trace_id"] = trace_id
    if project:
        row["project"] = project
    path = _data_root(data_root) / "agents" / (session or default_session()) / LOG_NAME
    append_line(path, json.dumps(row, ensure_ascii=False) + "\n")
    return row


def append_line(path: Path, line: str) -> None:
    """Append one whole line with a single write on an O_APPEND descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = line.encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        if written != len(data):  # never seen on local files; finish rather than leave half a line
            os.write(fd, data[written:])
    finally:
        os.close(fd)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if obj is None:
        return default
    if isinstance(obj, Mapping):
        return obj.get(name, default)
    return getattr(obj, name, default)


def record_response(
    response: Any,
    headers: Mapping[str, str] | None = None,
    **kw: Any,
) -> dict[str, Any]:
    """Record an Anthropic Messages response (SDK object or dict) and its rate-limit headers.

    Args:
        response: the response; its ``model`` and ``usage`` are read.
        headers: the HTTP response headers (``anthropic-ratelimit-*`` update ``rate_limits.json``).
        **kw: passed to `record` (session, task, project, cost_usd, data_root, ...).

    Returns:
        The row written to the log.
    """
    usage = _get(response, "usage")
    if usage is None:
        raise ValueError("the response has no usage to record")
    model = _get(response, "model") or "(unknown)"
    split = _get(usage, "cache_creation")
    writes = _get(usage, "cache_creation_input_tokens", 0) or 0
    one_hour = _get(split, "ephemeral_1h_input_tokens", 0) or 0
    row = record(model, _get(usage, "input_tokens", 0) or 0, _get(usage, "output_tokens", 0) or 0,
                 cache_read_tokens=_get(usage, "cache_read_input_tokens", 0) or 0,
                 cache_creation_tokens=max(writes, one_hour), cache_write_1h_tokens=one_hour, **kw)
    if headers:
        update_rate_limits(model, headers, data_root=kw.get("data_root"))
    return row


_HEADER_KINDS = {"requests": "requests", "input-tokens": "input_tokens", "output-tokens": "output_tokens",
                 "tokens": "tokens_combined"}


def observation_from_headers(headers: Mapping[str, str], now: float | None = None) -> dict[str, Any] | None:
    """``anthropic-ratelimit-{kind}-{limit,remaining,reset}`` as a rate_limits.json entry (None if absent)."""
    lower = {str(k).lower(): v for k, v in headers.items()}
    obs: dict[str, Any] = {
        "observed_at": datetime.fromtimestamp(now or time.time(), timezone.utc).isoformat(timespec="seconds")}
    found = False
    for header, kind in _HEADER_KINDS.items():
        bucket: dict[str, Any] = {}
        for part in ("limit", "remaining", "reset"):
            raw = lower.get(f"anthropic-ratelimit-{header}-{part}")
            if raw is not None:
                found = True
            if part == "reset":
                bucket[part] = raw
            else:
                try:
                    bucket[part] = int(raw) if raw is not None else None
                except ValueError:
                    bucket[part] = None
        obs[kind] = bucket
    if "retry-after" in lower:
        obs["retry_after_s"] = lower["retry-after"]
    return obs if found else None


def update_rate_limits(model: str, headers: Mapping[str, str], data_root: str | Path | None = None,
                       now: float | None = None) -> bool:
    """Replace the model's entry in ``rate_limits.json`` (atomic replace, serialized by a lock file)."""
    obs = observation_from_headers(headers, now)
    if obs is None:
        return False
    path = _data_root(data_root) / "runtime" / RATE_LIMITS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = json.loads(path.read_text())
            if not isinstance(current, dict):
                current = {}
        except (OSError, ValueError):
            current = {}
        current[model] = obs
        write_atomic(path, json.dumps(current, indent=2))
    return True
