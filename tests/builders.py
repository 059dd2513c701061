"""Hand-made fixtures: Claude Code transcript lines and internal log rows, in the real files' shapes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SONNET = "claude-sonnet-4-5-20250929"
OPUS = "claude-opus-4-5-20251101"
HAIKU = "claude-haiku-4-5-20251001"


def cc_line(
    msg_id: str | None,
    *,
    model: str = SONNET,
    input: int = 10,  # noqa: A002
    output: int = 100,
    cw: int = 0,
    cr: int = 0,
    w1h: int = 0,
    ts: str = "2026-11-20T10:00:00.000Z",
    session: str = "sess-1",
    cwd: str = "/home/dev/src/webshop",
    request_id: str | None = "req_1",
    sidechain: bool = False,
    content: list[dict[str, Any]] | None = None,
    usage_extra: dict[str, Any] | None = None,
    **envelope: Any,
) -> str:
    """One assistant line with a usage block (cw = all cache writes, w1h = the 1-hour part)."""
    usage: dict[str, Any] = {
        "input_tokens": input, "cache_creation_input_tokens": cw, "cache_read_input_tokens": cr,
        "output_tokens": output,
        "cache_creation": {"ephemeral_5m_input_tokens": cw - w1h, "ephemeral_1h_input_tokens": w1h},
        "service_tier": "standard",
    }
    usage.update(usage_extra or {})
    msg: dict[str, Any] = {"type": "message", "role": "assistant", "model": model,
                           "content": content if content is not None else [{"type": "text", "text": "hi"}],
                           "usage": usage}
    if msg_id is not None:
        msg["id"] = msg_id
    d: dict[str, Any] = {"parentUuid": None, "isSidechain": sidechain, "userType": "external", "cwd": cwd,
                         "sessionId": session, "version": "2.1.3", "gitBranch": "main", "type": "assistant",
                         "uuid": "u-" + str(msg_id), "timestamp": ts, "message": msg}
    if request_id:
        d["requestId"] = request_id
    d.update(envelope)
    return json.dumps(d, separators=(",", ":"))


def user_line(text: str = "hello", session: str = "sess-1", cwd: str = "/home/dev/src/webshop") -> str:
    """A user line (no usage)."""
    return json.dumps({"type": "user", "cwd": cwd, "sessionId": session, "timestamp": "2026-11-20T09:59:00.000Z",
                       "message": {"role": "user", "content": text}}, separators=(",", ":"))


def internal_row(
    *,
    ts: str = "2026-11-20T10:00:00+00:00",
    model: str = "claude-sonnet-4-5",
    input: int = 1000,  # noqa: A002
    output: int = 100,
    cr: int = 0,
    cw: int = 0,
    cost: float | None = 0.0045,
    mode: str = "cloud",
    task: str = "summarize:day",
    **extra: Any,
) -> str:
    """One row of llm_costs.jsonl."""
    row: dict[str, Any] = {
        "timestamp": ts, "model": model, "task_id": task, "input_tokens": input, "output_tokens": output,
        "cache_read_tokens": cr, "cache_creation_tokens": cw, "estimated_cost_usd": cost, "cached": False,
        "execution_mode": mode, "priced_with": "v2", "caller": ["ctx:x"],
        "backend": "lmstudio_local" if mode == "local" else "anthropic_default",
    }
    row.update(extra)
    return json.dumps(row)


def write_lines(path: Path, lines: list[str], *, newline: str = "\n", final_newline: bool = True,
                bom: bool = False) -> Path:
    """Write lines as a JSONL file (creating folders)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = newline.join(lines) + (newline if final_newline else "")
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode())
    return path


def project_dir(claude_dir: Path, cwd: str = "/home/dev/src/webshop") -> Path:
    """The encoded project folder Claude Code uses for a cwd."""
    return claude_dir / "projects" / "".join(c if c.isalnum() else "-" for c in cwd)


def rounded(x: Any) -> Any:
    """``x`` with every float rounded to 12 significant digits (costs summed in another order compare equal)."""
    if isinstance(x, float):
        return float(f"{x:.12g}")
    if isinstance(x, (list, tuple)):
        return [rounded(v) for v in x]
    if isinstance(x, dict):
        return {k: rounded(v) for k, v in x.items()}
    return x
