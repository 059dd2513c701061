"""A deterministic TokentopApp over the demo history at a fixed clock, for Pilot and snapshot tests."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tokentop.core import fmt
from tokentop.core.engine import Engine
from tokentop.ui.app import TokentopApp
from tokentop.ui.screenshots import NOW, demo_app
from tokentop.ui.widgets.linetable import LineTable

__all__ = ["NOW", "held_task_reads", "loaded", "make_app", "shown_tasks", "table_rows", "tasks_of", "text_of"]


def make_app(root: Path, live: bool = False) -> TokentopApp:
    return demo_app(root, NOW, live=live)


def text_of(app: TokentopApp, selector: str) -> str:
    """Plain text a widget shows."""
    return str(app.screen.query_one(selector).render())


async def loaded(app: TokentopApp, pilot) -> None:  # type: ignore[no-untyped-def]
    """Until the first scan (or warm start) is drawn: the scan worker starts after the first refresh, so
    waiting for workers alone can return before it exists."""
    import asyncio
    import time

    t0 = time.monotonic()
    while (app.scanning or app.updated_at is None) and time.monotonic() - t0 < 30:
        await asyncio.sleep(0.01)
    await app.workers.wait_for_complete()
    await pilot.pause()


def table_rows(app: TokentopApp, selector: str) -> list[list[str]]:
    table = app.screen.query_one(selector)
    return [[str(c).strip() for c in table.get_row_at(i)] for i in range(table.row_count)]


def held_task_reads(cube: Any, go: threading.Event, asked: list[Any]) -> None:
    """The cube's reads of sums by task noted in ``asked`` as they begin, ending once ``go`` is set; none on the
    caller's thread (`task_source` fails)."""
    reader = cube.task_reader
    assert reader is not None

    def held(*scope: Any) -> Any:
        read = reader(*scope)
        asked.append(scope)
        return lambda: go.wait(10) and read()

    def not_here(*scope: Any) -> None:
        raise AssertionError(f"sums by task read on the UI thread: {scope}")

    cube.task_reader, cube.task_source = held, not_here


def tasks_of(memory: Engine, flt: Any) -> list[tuple[str, str]]:
    """`report`'s top tasks for ``flt``, as the views show them (task, cost)."""
    from tokentop.core.report import top_tasks

    return [(t["task"], fmt.money(t["cost_usd"], t["unpriced_calls"], t["calls"])) for t in top_tasks(memory.cube, flt)]


async def shown_tasks(app: TokentopApp, table: str = "#breakdown") -> list[tuple[str, str]]:
    """A top-tasks table's (task, cost) rows, once it has some (within 5 s)."""
    import asyncio

    for _ in range(500):
        if app.screen.query_one(table, LineTable).row_count:
            break
        await asyncio.sleep(0.01)
    return [(r[0], r[2]) for r in table_rows(app, table)]
