"""A deterministic TokentopApp over the demo history at a fixed clock, for Pilot and snapshot tests."""

from __future__ import annotations

from pathlib import Path

from tokentop.ui.app import TokentopApp
from tokentop.ui.screenshots import NOW, demo_app

__all__ = ["NOW", "loaded", "make_app", "text_of"]


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
