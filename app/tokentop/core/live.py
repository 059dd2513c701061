"""Following the files live: watchfiles events -> one engine update per batch. Idle costs nothing.

Used by the TUI (as a Textual worker) and by `tokentop watch --json`. Roots that do not exist yet are
picked up when they appear (checked every few seconds with a stat, not a recursive watch of $HOME).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from .engine import Engine
from .rate_limits import FILE_NAME as RATE_LIMITS_FILE
from .rate_limits import PLAN_FILE

#: watchfiles groups events that arrive within this many ms; its default (1.6 s) is far too slow for streaming.
#: Its Rust loop wakes every STEP_MS even when idle: 25 ms keeps idle CPU near 0.4 % of a core (10 ms: ~1 %)
#: for ~28 ms median append-to-totals latency (bench/live.py).
DEBOUNCE_MS = 50
STEP_MS = 25
#: How often missing roots are looked for.
ROOT_CHECK_SECONDS = 2.0
#: After the watcher's start, one full catch-up reads what was written since the initial scan (the watcher
#: may not have been up yet).
CATCH_UP_SECONDS = 0.5
#: Files read per engine update, so a burst of thousands of new files is applied in bounded batches.
MAX_FILES_PER_BATCH = 200
#: Once live calls were stored, the ledger's snapshot is saved again after this many seconds without a batch: a
#: start meanwhile (a `statusline` that Claude Code runs, a `report`) then loads it instead of folding the stored
#: calls (0.2 s instead of 0.6 s on a 2 GB history). Nothing is saved while nothing arrives.
SNAPSHOT_QUIET_SECONDS = 5.0
#: While new calls wait to be stored (a PostgreSQL ledger's server is away, another tokentop holds the SQLite
#: ledger's lock), a catch-up is tried this often even if no file changes: once it works they are read and stored.
LEDGER_RETRY_SECONDS = 5.0


@dataclass
class Batch:
    """What one applied batch changed."""

    calls_read: int
    files: int
    rate_limits_changed: bool
    polling: bool


def watch_roots(engine: Engine) -> list[Path]:
    """Every folder to follow: Claude ``projects/`` roots, ``<data_root>/agents`` and ``<data_root>/runtime``."""
    roots = list(engine.sources.claude_roots)
    if engine.sources.data_root is not None:
        roots += [Path(engine.sources.data_root) / "agents", Path(engine.sources.data_root) / "runtime"]
    return roots


async def follow(
    engine: Engine,
    on_batch: Callable[[Batch], Awaitable[None] | None],
    stop: asyncio.Event,
    *,
    force_polling: bool | None = None,
) -> None:
    """Apply every change under the roots until ``stop`` is set.

    Args:
        engine: the engine to update (its initial scan must be done).
        on_batch: called once per applied batch (after the engine changed).
        stop: set it to end the loop.
        force_polling: True to poll (where inotify is unavailable); None = automatic fallback.
    """
    from watchfiles import Change, awatch

    polling = bool(force_polling)
    previous: set[str] | None = None  # roots watched before (None: the initial scan read them)
    catch_up: asyncio.Task[None] | None = None
    saving: asyncio.Task[None] | None = None  # the snapshot's save, once batches pause

    def applied(batch: Batch) -> Awaitable[None] | None:
        nonlocal saving
        if engine.snapshot_due:
            if saving is not None:
                saving.cancel()
            saving = asyncio.create_task(_save_snapshot_later(engine))
        return on_batch(batch)

    async def retry_ledger() -> None:
        while not stop.is_set():
            await _wait(stop, LEDGER_RETRY_SECONDS)
            if engine.ledger_behind and not stop.is_set():
                await _apply(engine, None, applied, polling)

    retrying = asyncio.create_task(retry_ledger())
    try:
        while not stop.is_set():
            roots = watch_roots(engine)
            existing = [str(r) for r in roots if r.is_dir()]
            missing = [r for r in roots if not r.is_dir()]
            if previous is not None and set(existing) - previous:
                # A root appeared: read what it already holds now, and once more when the new watcher is surely up
                # (a file written in between would otherwise wait for its next change). Reading twice is harmless.
                await _apply(engine, None, applied, polling)
                catch_up = asyncio.create_task(_later(0.5, engine, applied, polling))
            elif previous is None:  # lines written between the initial scan and the watcher's start: read them once
                catch_up = asyncio.create_task(_catch_up(CATCH_UP_SECONDS, engine, applied, polling))
            previous = set(existing)
            if not existing:
                await _wait(stop, ROOT_CHECK_SECONDS)
                continue
            appeared = asyncio.Event()
            watcher_stop = asyncio.Event()
            helpers = [asyncio.create_task(_look_for(missing, appeared, watcher_stop)),
                       asyncio.create_task(_relay(stop, watcher_stop))]
            try:
                async for changes in awatch(*existing, debounce=DEBOUNCE_MS, step=STEP_MS, stop_event=watcher_stop,
                                            force_polling=polling, poll_delay_ms=500, recursive=True,
                                            ignore_permission_denied=True):
                    paths = _expand({p for kind, p in changes if kind != Change.deleted})
                    await _apply(engine, paths, applied, polling)
            except OSError:
                if polling:
                    raise
                polling = True  # inotify unavailable or its watch limit reached: poll instead (announced)
                await _maybe_await(applied(Batch(0, 0, False, True)))
            finally:
                for h in helpers:
                    h.cancel()
    finally:
        retrying.cancel()
        for task in (catch_up, saving):
            if task is not None:
                task.cancel()


async def _save_snapshot_later(engine: Engine) -> None:
    """`Engine.save_snapshot` after `SNAPSHOT_QUIET_SECONDS` (cancelled by the next batch)."""
    await asyncio.sleep(SNAPSHOT_QUIET_SECONDS)
    if engine.snapshot_due:
        await asyncio.to_thread(engine.save_snapshot)


async def _later(delay: float, engine: Engine, on_batch: Callable[[Batch], Awaitable[None] | None],
                 polling: bool) -> None:
    """A full catch-up after ``delay`` seconds."""
    await asyncio.sleep(delay)
    await _apply(engine, None, on_batch, polling)


async def _catch_up(delay: float, engine: Engine, on_batch: Callable[[Batch], Awaitable[None] | None],
                    polling: bool) -> None:
    """A full catch-up after ``delay`` seconds, announced only when it changed something."""
    await asyncio.sleep(delay)
    version = engine.cube.version
    n = await asyncio.to_thread(engine.update, None)
    if n or engine.cube.version != version:
        await _maybe_await(on_batch(Batch(n, 0, False, polling)))


async def _look_for(missing: list[Path], appeared: asyncio.Event, watcher_stop: asyncio.Event) -> None:
    """Stop the current watcher when a missing root appears (so the next one watches it too)."""
    while missing and not watcher_stop.is_set():
        await _wait(watcher_stop, ROOT_CHECK_SECONDS)
        if any(m.is_dir() for m in missing):
            appeared.set()
            watcher_stop.set()


async def _relay(stop: asyncio.Event, watcher_stop: asyncio.Event) -> None:
    await stop.wait()
    watcher_stop.set()


def _expand(paths: set[str]) -> list[str]:
    """Changed paths, with new folders replaced by the files inside them.

    A folder created with files in it (a new project, a new ``subagents/``) can fill before the watcher has added
    it, so its files would never get an event of their own.
    """
    out: set[str] = set()
    for p in paths:
        if os.path.isdir(p):
            for dirpath, _dirs, names in os.walk(p):
                out.update(os.path.join(dirpath, n) for n in names
                           if n.endswith(".jsonl") or n in (RATE_LIMITS_FILE, PLAN_FILE))
        else:
            out.add(p)
    return sorted(out)


async def _apply(engine: Engine, paths: list[str] | None, on_batch: Callable[[Batch], Awaitable[None] | None],
                 polling: bool) -> None:
    rl_changed = paths is None or any(os.path.basename(p) in (RATE_LIMITS_FILE, PLAN_FILE) for p in paths)
    if paths is None:
        n = await asyncio.to_thread(engine.update, None)
        await _maybe_await(on_batch(Batch(n, 0, rl_changed, polling)))
        return
    inputs = [p for p in paths if p.endswith(".jsonl")]
    if not inputs and rl_changed:
        await _maybe_await(on_batch(Batch(0, 0, True, polling)))
        return
    for i in range(0, len(inputs), MAX_FILES_PER_BATCH):
        chunk = inputs[i:i + MAX_FILES_PER_BATCH]
        n = await asyncio.to_thread(engine.update, chunk)
        await _maybe_await(on_batch(Batch(n, len(chunk), rl_changed and i == 0, polling)))


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        pass


async def _maybe_await(x: Awaitable[None] | None) -> None:
    if x is not None:
        await x
