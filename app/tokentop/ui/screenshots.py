"""Regenerate README screenshots from the app itself: ``python -m tokentop.ui.screenshots [OUT_DIR]``.

The app runs over the demo history at a fixed clock, so the pictures (and the snapshot tests built on the
same app) are reproducible.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from ..core.budgets import Budget
from ..core.engine import Engine, Sources
from ..core.filters import parse_tz
from ..core.pricing import PriceBook
from ..demo import Demo
from .app import TokentopApp
from .css_cache import CssCache

NOW = 1_795_000_000.0  # 2026-11-18 11:06:40 UTC
SHOTS = (
    ("tokentop-80x24.svg", (80, 24), ()),
    ("tokentop-160x48.svg", (160, 48), ()),
    ("tokentop-solo-sonnet-80x24.svg", (80, 24), ("at",)),
    ("tokentop-session-detail-80x24.svg", (80, 24), ("#sessions", "enter")),  # "#id": focus that widget
)


def demo_app(root: Path, now: float = NOW, live: bool = False, date_range: str = "7d",
             css_cache: CssCache | None = None) -> TokentopApp:
    """The app over a fresh demo history written under ``root``, with its clock stopped at ``now``."""
    demo = Demo(root, now)
    demo.write_history()
    engine = Engine(Sources([demo.claude_dir], demo.data_root, "work-buddy"), PriceBook(), parse_tz("UTC"))
    budgets = [Budget("all", "daily", 5.0, hard_stop=True), Budget("webshop", "weekly", 4.0)]
    return TokentopApp(engine, clock=lambda: now, live=live, budgets=budgets, date_range=date_range,
                       css_cache=css_cache)


async def shoot(out: Path) -> list[Path]:
    """Write every screenshot into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, size, keys in SHOTS:
        with tempfile.TemporaryDirectory() as tmp:
            app = demo_app(Path(tmp))
            async with app.run_test(size=size) as pilot:
                while app.scanning or app.updated_at is None:  # the scan worker starts after the first draw
                    await asyncio.sleep(0.01)
                await app.workers.wait_for_complete()
                await pilot.pause()
                for key in keys:
                    if key.startswith("#"):
                        app.screen.query_one(key).focus()
                    else:
                        await pilot.press(key)
                    await pilot.pause()
                app.save_screenshot(filename=name, path=str(out))
        written.append(out / name)
    return written


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("screenshots")
    for p in asyncio.run(shoot(out)):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
