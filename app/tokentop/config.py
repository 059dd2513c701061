"""Paths (platformdirs) and the settings file."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

APP = "tokentop"


def config_dir() -> Path:
    """Where settings.toml and prices.toml live (``TOKENTOP_CONFIG_DIR`` overrides)."""
    env = os.environ.get("TOKENTOP_CONFIG_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir(APP))


def cache_dir() -> Path:
    """Where derived, rebuildable data lives (the price table cache)."""
    env = os.environ.get("TOKENTOP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir(APP))


def default_ledger_path() -> Path:
    """The SQLite ledger (``TOKENTOP_LEDGER`` overrides): tokentop's own data dir."""
    env = os.environ.get("TOKENTOP_LEDGER")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP)) / "ledger.sqlite"


def default_data_root() -> Path:
    """The app data root holding ``agents/`` and ``runtime/`` (``TOKENTOP_DATA_ROOT`` overrides)."""
    env = os.environ.get("TOKENTOP_DATA_ROOT")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir(APP))


class Settings(msgspec.Struct):
    """User settings; every field has a default so a missing file is fine."""

    active_window_minutes: float = 15.0
    internal_project: str | None = None
    tz: str | None = None

    @classmethod
    def load(cls, path: Path | None = None) -> Settings:
        """Read ``settings.toml``; unknown keys are ignored, a malformed file raises ValueError."""
        path = path or config_dir() / "settings.toml"
        if not path.exists():
            return cls()
        import tomllib

        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"cannot read settings {path}: {e}") from e
        s = cls()
        if isinstance(data.get("active_window_minutes"), int | float):
            s.active_window_minutes = float(data["active_window_minutes"])
        if isinstance(data.get("internal_project"), str):
            s.internal_project = data["internal_project"]
        if isinstance(data.get("tz"), str):
            s.tz = data["tz"]
        return s
