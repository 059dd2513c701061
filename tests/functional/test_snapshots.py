"""SVG snapshots of the main layouts (pytest-textual-snapshot). Update with --snapshot-update after a look."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui_support import loaded, make_app


async def settle(pilot) -> None:
    await loaded(pilot.app, pilot)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_main_screen(snap_compare, tmp_path: Path, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(tmp_path), terminal_size=size, run_before=settle)


def test_soloed_model_80x24(snap_compare, tmp_path: Path) -> None:
    async def solo_second(pilot) -> None:
        await settle(pilot)
        await pilot.press("at")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=solo_second)


def test_no_models_selected_hint_80x24(snap_compare, tmp_path: Path) -> None:
    async def all_off(pilot) -> None:
        await settle(pilot)
        for i in range(min(9, len(pilot.app.view["chips"]))):
            await pilot.press(str(i + 1))
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=all_off)


def test_light_theme_80x24(snap_compare, tmp_path: Path) -> None:
    async def light(pilot) -> None:
        pilot.app.theme = "textual-light"
        await settle(pilot)

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=light)


@pytest.mark.parametrize("presses", [1, 2, 3])
def test_breakdown_views_80x24(snap_compare, tmp_path: Path, presses: int) -> None:
    async def views(pilot) -> None:
        await settle(pilot)
        for _ in range(presses):
            await pilot.press("v")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=views)


@pytest.mark.parametrize("route", ["session", "project"])
def test_drill_down_80x24(snap_compare, tmp_path: Path, route: str) -> None:
    async def drill(pilot) -> None:
        await settle(pilot)
        if route == "project":
            await pilot.press("v")
            await pilot.pause()
        pilot.app.screen.query_one("#sessions" if route == "session" else "#breakdown").focus()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path), terminal_size=(80, 24), run_before=drill)
