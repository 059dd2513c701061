"""Claude Code transcripts: discovery, fast line scanning, parsing into Calls, and the dedupe rule.

Only lines whose raw bytes contain ``"usage"`` are JSON-decoded; every other line gets a cheap structural check
(starts with ``{``, ends with ``}``) so broken lines are still counted, and a full decode only when that fails.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from .records import CLAUDE_CODE, CLOUD, Call, Tokens
from .warnings import INVALID_UTF8, UNPARSABLE, Warnings

USAGE = b'"usage"'
MESSAGE_KEY = b'"message":'
USER_TYPE = b'"type":"user"'
_USER_LINE_PROBE = 1024
BOM = b"\xef\xbb\xbf"
NOT_A_MODEL = "<synthetic>"


# --- discovery ------------------------------------------------------------------------------------------------


def default_claude_dirs(env: dict[str, str] | None = None) -> list[Path]:
    """``CLAUDE_CONFIG_DIR`` (comma-separated) if set, else ``~/.claude`` and ``~/.config/claude``."""
    env = os.environ if env is None else env
    configured = env.get("CLAUDE_CONFIG_DIR", "").strip()
    if configured:
        return [Path(p.strip()).expanduser() for p in configured.split(",") if p.strip()]
    home = Path(env.get("HOME") or Path.home())
    return [home / ".claude", home / ".config" / "claude"]


#: Claude Code's default ``cleanupPeriodDays``: a lower setting deletes transcripts sooner, and is warned about.
DEFAULT_CLEANUP_DAYS = 30


def cleanup_period_days(claude_dirs: Iterable[Path]) -> int | None:
    """Claude Code's ``cleanupPeriodDays`` (transcripts older than that are deleted), when a settings file sets it."""
    for d in claude_dirs:
        try:
            value = msgspec.json.decode((Path(d) / "settings.json").read_bytes()).get("cleanupPeriodDays")
        except (OSError, msgspec.DecodeError, AttributeError):
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def projects_roots(claude_dirs: Iterable[Path]) -> list[Path]:
    """The ``projects/`` folder of each Claude config dir (existing or not: live mode waits for it)."""
    seen: list[Path] = []
    for d in claude_dirs:
        p = Path(d).expanduser() / "projects"
        if p not in seen:
            seen.append(p)
    return seen


class Listing(msgspec.Struct, array_like=True):
    """One folder as last listed: its mtime then, its subfolders and its ``*.jsonl`` files (names)."""

    mtime_ns: int
    dirs: list[str]
    files: list[str]


#: A folder listed less than this long after it changed is listed again next time: a change within the
#: granularity of its mtime would not show.
RACY_NS = 2_000_000_000


def discover_files(roots: Iterable[Path], stats: dict[str, os.stat_result] | None = None,
                   listings: dict[str, Listing] | None = None) -> list[tuple[str, int]]:
    """Every non-empty ``*.jsonl`` below the roots (subagent folders included), with its size.

    Args:
        stats: receives each file's stat (the catch-up after a warm start compares it with the file's recorded
            state instead of calling stat again).
        listings: the folders as last listed, updated in place. A folder whose mtime is unchanged is not listed
            again (creating, deleting or renaming an entry changes it): only its files are stat'ed.
    """
    out: list[tuple[str, int]] = []

    def keep(path: str, st: os.stat_result) -> None:
        if st.st_size:
            out.append((path, st.st_size))
            if stats is not None:
                stats[path] = st

    fresh: dict[str, Listing] = {}
    now_ns = time.time_ns()
    stack = [str(r) for r in roots]
    while stack:
        d = stack.pop()
        mtime_ns = 0
        if listings is not None:
            try:
                mtime_ns = os.stat(d).st_mtime_ns  # before listing: a change during it shows next time
            except OSError:
                continue
            known = listings.get(d)
            if known is not None and known.mtime_ns == mtime_ns:
                fresh[d] = known
                prefix = d + os.sep  # what scandir's entry paths are (os.path.join costs a third of this loop)
                stack.extend(prefix + n for n in known.dirs)
                for n in known.files:
                    p = prefix + n
                    try:
                        keep(p, os.stat(p))
                    except OSError:
                        continue
                continue
        dirs: list[str] = []
        files: list[str] = []
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        dirs.append(e.name)
                        stack.append(e.path)
                    elif e.name.endswith(".jsonl") and e.is_file():
                        files.append(e.name)
                        keep(e.path, e.stat())
                except OSError:
                    continue
        if listings is not None and now_ns - mtime_ns > RACY_NS:
            fresh[d] = Listing(mtime_ns, dirs, files)
    if listings is not None:
        listings.clear()
        listings.update(fresh)
    out.sort()
    return out


# --- line decoding --------------------------------------------------------------------------------------------


class _CacheCreation(msgspec.Struct):
    ephemeral_5m_input_tokens: Tokens | None = None
    ephemeral_1h_input_tokens: Tokens | None = None


class _ServerToolUse(msgspec.Struct):
    web_search_requests: Tokens | None = None


class _Usage(msgspec.Struct):
    input_tokens: Tokens | None = None
    output_tokens: Tokens | None = None
    cache_creation_input_tokens: Tokens | None = None
    cache_read_input_tokens: Tokens | None = None
    cache_creation: _CacheCreation | None = None
    server_tool_use: _ServerToolUse | None = None
    inference_geo: str | None = None
    speed: str | None = None


class _Block(msgspec.Struct):
    type: str | None = None
    name: str | None = None


class _Message(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    usage: _Usage | None = None
    content: list[_Block | str] | str | None = None


class _Progress(msgspec.Struct):
    message: _Envelope | str | None = None


class _Quota(msgspec.Struct):
    status: str | None = None
    resetsAt: float | None = None  # noqa: N815
    rateLimitType: str | None = None  # noqa: N815


class _Envelope(msgspec.Struct):
    type: str | None = None
    timestamp: datetime | None = None
    sessionId: str | None = None  # noqa: N815 (the file's own key)
    cwd: str | None = None
    isApiErrorMessage: bool | None = None  # noqa: N815
    message: _Message | str | None = None
    data: _Progress | None = None
    error: str | None = None
    quotaLimits: _Quota | None = None  # noqa: N815


class LimitHit(msgspec.Struct, array_like=True):
    """Claude Code reported hitting a plan limit (a measured event, not a guess)."""

    ts: float
    window: str  # five_hour, seven_day, or "unknown" (legacy rows do not say)
    resets_at: float | None
    status: str
    session: str


_LEGACY_LIMIT = b"usage limit reached|"


def _limit_hit(env: _Envelope, line: bytes, session: str) -> LimitHit | None:
    """A limit-hit row: ``error:"rate_limit"`` (+ ``quotaLimits``) or the legacy ``usage limit reached|<epoch>``."""
    ts = 0.0 if env.timestamp is None else _epoch(env.timestamp)
    sid = env.sessionId or session
    q = env.quotaLimits
    if q is not None and (q.rateLimitType or q.resetsAt):
        return LimitHit(ts, q.rateLimitType or "unknown", q.resetsAt, q.status or "", sid)
    i = line.find(_LEGACY_LIMIT)
    if i != -1:
        digits = line[i + len(_LEGACY_LIMIT): i + len(_LEGACY_LIMIT) + 12].split(b'"')[0].split(b"\\")[0]
        resets = float(digits) if digits.isdigit() else None
        return LimitHit(ts, "unknown", resets, "rejected", sid)
    if env.error == "rate_limit":
        return LimitHit(ts, "unknown", None, "rejected", sid)
    return None


_decoder = msgspec.json.Decoder(_Envelope)


def project_of_cwd(cwd: str) -> str:
    """Last path component of ``cwd``, with ``<repo>/.claude/worktrees/<name>`` collapsed to ``<repo>``."""
    try:
        return _project_cache[cwd]
    except KeyError:
        pass
    p = cwd.replace("\\", "/").rstrip("/")
    i = p.find("/.claude/worktrees/")
    if i != -1:
        p = p[:i]
    name = p.rsplit("/", 1)[-1] or p
    if len(_project_cache) < 100_000:
        _project_cache[cwd] = name
    return name


_project_cache: dict[str, str] = {}


def _tools_of(content: object) -> str:
    if type(content) is not list:
        return "(text)"
    names = [b.name for b in content if type(b) is _Block and b.type == "tool_use" and b.name]
    if not names:
        return "(text)"
    return names[0] if len(names) == 1 else ",".join(sorted(set(names)))


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _epoch(ts: datetime) -> float:
    return (ts.replace(tzinfo=timezone.utc) - _EPOCH).total_seconds() if ts.tzinfo is None else ts.timestamp()


def _call_of(env: _Envelope, path: str, fallback_session: str, fallback_project: str) -> Call | None:
    msg = env.message
    if type(msg) is not _Message:
        return None
    u = msg.usage
    if u is None or env.isApiErrorMessage or msg.model == NOT_A_MODEL or not msg.model or env.timestamp is None:
        return None
    epoch = _epoch(env.timestamp)
    writes = u.cache_creation_input_tokens or 0
    w1h = 0
    cc = u.cache_creation
    if cc is not None:
        w1h = cc.ephemeral_1h_input_tokens or 0
        split = (cc.ephemeral_5m_input_tokens or 0) + w1h
        if split > writes:
            writes = split
    stu = u.server_tool_use
    return Call(
        CLAUDE_CODE,
        epoch,
        msg.model,
        project_of_cwd(env.cwd) if env.cwd else fallback_project,
        env.sessionId or fallback_session,
        CLOUD,
        u.input_tokens or 0,
        u.output_tokens or 0,
        writes,
        u.cache_read_input_tokens or 0,
        None,
        msg.id,
        _tools_of(msg.content),
        w1h,
        (stu.web_search_requests or 0) if stu is not None else 0,
        u.speed or "",
        u.inference_geo or "",
        path,
    )


def _decode(line: bytes, warnings: Warnings) -> _Envelope | None:
    try:
        return _decoder.decode(line)
    except (msgspec.DecodeError, UnicodeDecodeError):
        pass
    repaired = line.decode("utf-8", errors="replace").encode("utf-8")
    if repaired != line:
        try:
            env = _decoder.decode(repaired)
        except (msgspec.DecodeError, UnicodeDecodeError):
            pass
        else:
            warnings[INVALID_UTF8] += 1
            return env
    warnings[UNPARSABLE] += 1
    return None


def _is_json_object(line: bytes) -> bool:
    try:
        return isinstance(msgspec.json.decode(line), dict)
    except (msgspec.DecodeError, UnicodeDecodeError):
        try:
            return isinstance(msgspec.json.decode(line.decode("utf-8", errors="replace")), dict)
        except (msgspec.DecodeError, UnicodeDecodeError):
            return False


def parse_lines(
    buf: bytes, path: str, warnings: Warnings, session: str = "", project: str = "", base: int = 0,
    limits: list[LimitHit] | None = None,
) -> list[Call]:
    """Calls in ``buf``, which holds complete ``\\n``-terminated lines only (the caller keeps a partial tail).

    Args:
        buf: bytes of whole lines; a leading UTF-8 BOM is ignored, CRLF is fine.
        path: file the bytes came from (recorded on each call).
        warnings: counters to bump for skipped or repaired lines.
        session: session for lines without ``sessionId`` (default: the file's stem).
        project: project for lines without ``cwd`` (default: the file's folder name).
        base: file offset of ``buf`` (recorded on calls without a key, which the line's place identifies).
        limits: if given, receives the plan-limit hits the lines report.

    Returns:
        One Call per usage-bearing line, not yet de-duplicated or priced.
    """
    if buf.startswith(BOM):
        buf = buf[3:]
        base += 3
    if not session:
        session = os.path.splitext(os.path.basename(path))[0]
    if not project:
        project = os.path.basename(os.path.dirname(path))
    out: list[Call] = []
    n = len(buf)
    pos = 0
    find = buf.find
    rfind = buf.rfind  # "usage" comes after the content, near the end of an assistant line
    # The previous call and its decoded parts: the next content-block line of the same message usually repeats
    # its usage exactly, and then only its time and tools can change the kept copy (no new Call needed).
    last: Call | None = None
    last_env: _Envelope | None = None
    while pos < n:
        e = find(b"\n", pos)
        if e == -1:  # not a line yet; callers should not pass it, but never count it
            break
        end = e - 1 if e > pos and buf[e - 1] == 0x0D else e
        u = -1
        user = False
        if end - pos > _USER_LINE_PROBE:
            # Big lines are mostly tool results: a top-level "type":"user" before the first "message" key
            # means a user line, which never carries usage nor a limit hit, so its bytes need no search.
            m = find(MESSAGE_KEY, pos, pos + _USER_LINE_PROBE)
            user = m != -1 and find(USER_TYPE, pos, m) != -1
            if not user:
                u = rfind(USAGE, pos, end)
        else:
            u = rfind(USAGE, pos, end)
        if u == -1 and limits is not None and not user and (find(_LEGACY_LIMIT, pos, end) != -1 or
                                                            find(b'"rate_limit"', pos, end) != -1):
            u = pos  # a limit-hit row without usage: decode it too
        if u != -1:
            line = buf[pos:end]
            env = _decode(line, warnings)
            if env is not None:
                msg = env.message
                if (
                    last is not None and last_env is not None and type(msg) is _Message and msg.id is not None
                    and msg.id == last.key and msg.usage == last_env.message.usage  # type: ignore[union-attr]
                    and msg.model == last.model and env.sessionId == last_env.sessionId
                    and env.cwd == last_env.cwd and not env.isApiErrorMessage and env.timestamp is not None
                ):
                    ts = _epoch(env.timestamp)
                    if ts >= last.ts:  # what merge() would keep, without a new Call
                        task = _tools_of(msg.content)
                        if ts > last.ts or task > last.task:
                            last.ts, last.task = ts, task
                    pos = e + 1
                    continue
                call = _call_of(env, path, session, project)
                if call is not None:
                    if call.key is None:
                        call.offset = base + pos
                    out.append(call)
                    last, last_env = call, env
                elif limits is not None and (env.isApiErrorMessage or env.error or env.quotaLimits is not None
                                             or (type(msg) is _Message and msg.model == NOT_A_MODEL)):
                    hit = _limit_hit(env, line, session)
                    if hit is not None:
                        limits.append(hit)
                elif env.type == "progress" and env.data is not None and isinstance(env.data.message, _Envelope):
                    inner = env.data.message
                    if inner.timestamp is None:  # a copy without its own time: the line's
                        inner.timestamp = env.timestamp
                    call = _call_of(inner, path, env.sessionId or session,
                                    project_of_cwd(env.cwd) if env.cwd else project)
                    if call is not None:
                        if not inner.sessionId and env.sessionId:
                            call.session = env.sessionId
                        if call.key is None:
                            call.offset = base + pos
                        out.append(call)
                elif (type(msg) is _Message and msg.usage is not None and not env.isApiErrorMessage
                      and (not msg.model or env.timestamp is None)):
                    # usage of no model, or of no time: a damaged line, not a call to guess the price or day of
                    warnings[UNPARSABLE] += 1
        elif end > pos:
            if not (buf[pos] == 0x7B and buf[end - 1] == 0x7D) and not _is_json_object(buf[pos:end]):
                if buf[pos:end].strip():
                    warnings[UNPARSABLE] += 1
        pos = e + 1
    return out


# --- the dedupe rule ------------------------------------------------------------------------------------------


def _rank(c: Call) -> tuple[int, float, str, str, str, str, str]:
    # Largest output first (the final snapshot); the rest only makes ties deterministic in any order.
    return (c.output_tokens, c.ts, c.file, c.model, c.session, c.project, c.task)


def merge(old: Call, new: Call) -> Call:
    """Two copies of one message: the max of each usage field; attributes from the final (largest) copy."""
    keep, other = (new, old) if _rank(new) > _rank(old) else (old, new)
    if (
        other.input_tokens <= keep.input_tokens
        and other.cache_creation_tokens <= keep.cache_creation_tokens
        and other.cache_read_tokens <= keep.cache_read_tokens
        and other.cache_write_1h <= keep.cache_write_1h
        and other.web_search_requests <= keep.web_search_requests
    ):
        return keep
    merged = msgspec.structs.replace(
        keep,
        input_tokens=max(keep.input_tokens, other.input_tokens),
        cache_creation_tokens=max(keep.cache_creation_tokens, other.cache_creation_tokens),
        cache_read_tokens=max(keep.cache_read_tokens, other.cache_read_tokens),
        cache_write_1h=max(keep.cache_write_1h, other.cache_write_1h),
        web_search_requests=max(keep.web_search_requests, other.web_search_requests),
    )
    return merged


def dedupe(calls: Iterable[Call], into: dict[str, Call]) -> list[Call]:
    """Fold keyed calls into ``into`` (key -> merged call); return the calls without a key, never merged."""
    keyless: list[Call] = []
    for c in calls:
        k = c.key
        if k is None:
            keyless.append(c)
            continue
        prev = into.get(k)
        into[k] = c if prev is None else merge(prev, c)
    return keyless
