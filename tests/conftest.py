"""Shared fixtures: every test runs with a private HOME, config dir and data root (never the user's)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tokentop import cli


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("TOKENTOP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("TOKENTOP_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("TOKENTOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def claude_dir(tmp_path: Path) -> Path:
    d = tmp_path / "claude"
    (d / "projects").mkdir(parents=True)
    return d


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    (d / "agents").mkdir(parents=True, exist_ok=True)
    return d


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; returns exit code, stdout, stderr."""
    try:
        code = cli.main(args)
    except SystemExit as e:  # argparse exits
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def report(claude_dir: Path, data_root: Path, capsys: pytest.CaptureFixture[str]) -> Any:
    """``report(*args)`` -> parsed ``report --json`` over the test's claude_dir and data_root (UTC)."""

    def run(*args: str) -> dict[str, Any]:
        code, out, err = run_cli(["report", "--json", "--tz", "UTC", "--claude-dir", str(claude_dir),
                                  "--data-root", str(data_root), *args], capsys)
        assert code == 0, err
        return json.loads(out)

    return run


@pytest.fixture(scope="session")
def cluster() -> Any:
    """A throwaway PostgreSQL cluster for the whole test session (started on first use)."""
    from tests.pgcluster import Cluster

    c = Cluster()
    yield c
    c.destroy()


@pytest.fixture
def team_url(cluster: Any) -> str:
    """A fresh, empty database in the cluster."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url_of(name)
