"""Team mode against a real PostgreSQL (a throwaway cluster per test session, a fresh database per test)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tokentop.core.filters import Filter, parse_tz
from tokentop.core.team import Syncer, TeamError, TeamStore, redact
from tokentop.core.team_engine import TeamEngine

from tests.builders import OPUS, SONNET, cc_line, rounded
from tests.conftest import run_cli
from tests.pgcluster import Cluster

TOTALS = ("calls", "input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


class Machine:
    """One machine: its own Claude Code dir and local ledger."""

    def __init__(self, root: Path, name: str, capsys: Any) -> None:
        self.name, self.capsys = name, capsys
        self.claude = root / name / "claude"
        (self.claude / "projects" / "-home-dev-src-webshop").mkdir(parents=True)
        self.ledger = root / name / "ledger.sqlite"
        self.data = root / name / "data"
        (self.data / "agents").mkdir(parents=True)
        self.lines = 0

    def opts(self) -> list[str]:
        return ["--claude-dir", str(self.claude), "--data-root", str(self.data), "--ledger", str(self.ledger),
                "--tz", "UTC"]

    def write(self, *lines: str, session: str = "s1") -> None:
        path = self.claude / "projects" / "-home-dev-src-webshop" / f"{self.name}-{session}.jsonl"
        with open(path, "a") as f:
            f.write("".join(line + "\n" for line in lines))

    def calls(self, n: int, start: int = 0, model: str = SONNET, session: str = "s1", now: bool = False) -> None:
        """n calls on 2026-11-20 (``now``: in the last minutes, for budgets of the current period)."""
        def ts(i: int) -> str:
            if now:
                return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60 - i))
            return f"2026-11-20T{10 + i % 10:02d}:{i % 60:02d}:00Z"

        self.write(*[cc_line(f"msg_{self.name}_{i}", model=model, input=10 + i, output=100 + i, cr=1000,
                             session=f"{self.name}-{session}", ts=ts(i))
                     for i in range(start, start + n)], session=session)

    def report(self) -> dict[str, Any]:
        code, out, err = run_cli(["report", "--json", *self.opts()], self.capsys)
        assert code == 0, err
        return json.loads(out)

    def sync(self, url: str) -> tuple[int, str, str]:
        return run_cli(["sync", "--to", url, "--as-machine", self.name, *self.opts()], self.capsys)


def team_report(url: str, capsys: Any, *args: str) -> dict[str, Any]:
    code, out, err = run_cli(["report", "--json", "--tz", "UTC", "--team", url, *args], capsys)
    assert code == 0, err
    return json.loads(out)


def sum_totals(*reps: dict[str, Any]) -> dict[str, Any]:
    return {k: sum(r["totals"][k] for r in reps) for k in TOTALS}


@pytest.fixture
def two(tmp_path: Path, capsys: Any) -> tuple[Machine, Machine]:
    a, b = Machine(tmp_path, "alpha", capsys), Machine(tmp_path, "beta", capsys)
    a.calls(30)
    b.calls(20, model=OPUS)
    return a, b


def test_two_machines_synced_team_totals_are_the_sum_and_resync_counts_nothing_twice(
        two: tuple[Machine, Machine], team_url: str, capsys: Any) -> None:
    a, b = two
    for m in (a, b):
        code, out, err = m.sync(team_url)
        assert code == 0, err
        assert f"as {m.name}" in out and "synced" in out
        assert "tokentop@127.0.0.1" in out  # where, never a password
    team = team_report(team_url, capsys)
    expected = sum_totals(a.report(), b.report())
    assert {k: team["totals"][k] for k in TOTALS} == expected
    assert team["totals"]["cost_usd"] == pytest.approx(a.report()["totals"]["cost_usd"]
                                                       + b.report()["totals"]["cost_usd"])
    assert {r["machine"]: r["calls"] for r in team["by_machine"]} == {"alpha": 30, "beta": 20}
    assert {s["machine"] for s in team["sessions"]} == {"alpha", "beta"}
    only_beta = team_report(team_url, capsys, "--machine", "beta")
    assert only_beta["totals"]["calls"] == 20 and [r["machine"] for r in only_beta["by_machine"]] == ["beta"]

    for m in (a, b):  # again: nothing new is counted
        assert m.sync(team_url)[0] == 0
    again = team_report(team_url, capsys)
    assert {k: again["totals"][k] for k in TOTALS} == expected
    store = TeamStore(team_url)
    assert store.count() == 50
    rows = store.conn.execute("SELECT sum(calls), sum(output_tokens) FROM tokentop.rollup").fetchone()
    assert rows == (50, expected["output_tokens"])  # the trigger-kept rollup agrees with the calls
    # each call's file, source folder and price version as the machine's ledger has them
    pushed = store.conn.execute('SELECT machine, file, root, priced_with, count(*) FROM tokentop.calls '
                                'GROUP BY 1, 2, 3, 4 ORDER BY 1').fetchall()
    assert [(m, f, r, n) for m, f, r, _, n in pushed] == [
        (m.name, str(m.claude / "projects" / "-home-dev-src-webshop" / f"{m.name}-s1.jsonl"),
         str(m.claude / "projects"), n) for m, n in ((a, 30), (b, 20))]
    assert all(p.startswith("genai-prices:") for _, _, _, p, _ in pushed)


def test_a_watermark_counted_in_rowids_a_migration_renumbered_is_not_used(two: tuple[Machine, Machine],
                                                                          team_url: str) -> None:
    from tokentop.core.team import describe_url

    a, _ = two
    a.report()  # the ledger, at the current schema
    # What a sync under schema 2 left beside it: the last pushed rowid, counted before schema 3 numbered them anew.
    Path(str(a.ledger) + ".sync.json").write_text(json.dumps({f"sync:{describe_url(team_url)}:alpha": 10**9}))
    assert a.sync(team_url)[0] == 0
    assert TeamStore(team_url).count() == 30  # everything pushed (again: the upsert keeps one row per call)


def test_a_larger_snapshot_of_a_call_updates_it_in_place(two: tuple[Machine, Machine], team_url: str,
                                                         capsys: Any) -> None:
    a, _ = two
    assert a.sync(team_url)[0] == 0
    before = team_report(team_url, capsys)["totals"]
    # The final streamed line of msg_alpha_3 arrives later with the real output count.
    a.write(cc_line("msg_alpha_3", input=13, output=5000, cr=1000, session="alpha-s1", ts="2026-11-20T13:03:00Z"))
    local = a.report()["totals"]
    assert a.sync(team_url)[0] == 0
    after = team_report(team_url, capsys)["totals"]
    assert after["calls"] == before["calls"] == 30
    assert after["output_tokens"] == before["output_tokens"] + 5000 - 103 == local["output_tokens"]
    assert after["cost_usd"] == pytest.approx(local["cost_usd"])


def test_server_killed_mid_sync_then_restarted_resumes_without_loss(tmp_path: Path, team_url: str,
                                                                    cluster: Cluster, capsys: Any) -> None:
    m = Machine(tmp_path, "gamma", capsys)
    m.calls(500)
    m.report()  # fills the local ledger
    syncer = Syncer(m.ledger, team_url, machine="gamma", batch=100)
    killed = []

    def kill_after_first_batch(done: int, total: int) -> None:
        if not killed:
            killed.append(done)
            cluster.stop("immediate")  # a crash, mid-sync

    try:
        with pytest.raises(TeamError) as e:
            syncer.run_once(kill_after_first_batch)
        assert "127.0.0.1" in str(e.value) and "\n" not in str(e.value)
        assert syncer.status.state == "offline" and syncer.status.backlog == 400
        assert syncer.backlog() == 400  # the committed first batch is remembered locally
    finally:
        cluster.start()
    assert syncer.run_once() == 400
    assert TeamStore(team_url).count() == 500
    assert team_report(team_url, capsys)["totals"]["output_tokens"] == m.report()["totals"]["output_tokens"]


def test_team_top_tasks_are_the_databases_sums_and_equal_those_of_every_call(two: tuple[Machine, Machine],
                                                                              team_url: str) -> None:
    from tokentop.core.report import top_tasks

    a, b = two
    grep = [{"type": "tool_use", "id": "t1", "name": "Grep", "input": {}}]
    a.write(*[cc_line(f"grep_{i}", content=grep, output=40 + i, ts="2026-11-21T09:00:00Z") for i in range(4)])
    a.sync(team_url)
    b.sync(team_url)
    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    engine.start()
    summed = engine.cube.task_source
    assert summed is not None
    for machines, calls in ((None, 54), (frozenset({"alpha"}), 34), (frozenset({"beta"}), 20)):
        engine.set_scope(machines)
        for flt in (Filter(tz=parse_tz("UTC")), Filter(tz=parse_tz("UTC"), models=(OPUS,))):
            engine.cube.task_source = summed
            got = top_tasks(engine.cube, flt)
            engine.cube.task_source = None  # every single call instead
            want = top_tasks(engine.cube, flt)
            assert rounded(got) == rounded(want)  # costs summed in another order
        assert sum(r["calls"] for r in got) == (20 if machines != frozenset({"alpha"}) else 0)  # Opus: beta's
        engine.cube.task_source = summed
        assert sum(r["calls"] for r in top_tasks(engine.cube, Filter(tz=parse_tz("UTC")))) == calls


def test_viewer_is_told_by_notify_and_updates(two: tuple[Machine, Machine], team_url: str) -> None:
    a, b = two
    a.sync(team_url)
    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    engine.start()
    assert engine.totals(Filter(tz=parse_tz("UTC")))["calls"] == 30
    stop, ready, seen = threading.Event(), threading.Event(), []
    t = threading.Thread(target=engine.listen, args=(seen.append, stop, ready), daemon=True)
    t.start()
    try:
        assert ready.wait(10)
        t0 = time.monotonic()
        b.sync(team_url)
        while engine.totals(Filter(tz=parse_tz("UTC")))["calls"] != 50 and time.monotonic() - t0 < 10:
            time.sleep(0.01)
        assert engine.totals(Filter(tz=parse_tz("UTC")))["calls"] == 50
        assert seen and sum(seen) >= 1
        assert engine.report(Filter(tz=parse_tz("UTC")))["by_machine"][0]["machine"] in ("alpha", "beta")
    finally:
        stop.set()
        t.join(5)


def test_team_budget_check_exits_1_past_a_hard_stop(tmp_path: Path, team_url: str, capsys: Any) -> None:
    a, b = Machine(tmp_path, "alpha", capsys), Machine(tmp_path, "beta", capsys)
    a.calls(10, now=True)
    b.calls(10, now=True)
    a.sync(team_url)
    b.sync(team_url)
    code, out, err = run_cli(["budget", "set", "all", "monthly", "0.01", "--hard-stop", "--team", team_url], capsys)
    assert code == 0, err
    code, out, err = run_cli(["budget", "check", "--team", team_url, "--tz", "UTC", "--json"], capsys)
    statuses = json.loads(out)["budgets"]
    assert code == 1 and "over team budget: all monthly" in err
    assert statuses[0]["spent_usd"] == pytest.approx(team_report(team_url, capsys)["totals"]["cost_usd"])
    assert statuses[0]["spent_usd"] > a.report()["totals"]["cost_usd"] > 0  # both machines count
    code, out, err = run_cli(["budget", "show", "--json", "--team", team_url], capsys)
    assert code == 0
    assert run_cli(["budget", "check", "--json"], capsys)[0] == 0  # the local budgets are separate


@pytest.mark.parametrize(("url", "says"), [
    ("postgresql://tokentop:hunter2@127.0.0.1:1/x", "connection refused"),
    ("not a url", "not a PostgreSQL connection string"),
    ("postgresql://127.0.0.1:5432/db?sslmode=bogus", "not a valid PostgreSQL connection string"),
])
def test_bad_url_or_refused_connection_is_one_line_without_the_password(url: str, says: str, capsys: Any,
                                                                        tmp_path: Path) -> None:
    code, out, err = run_cli(["report", "--json", "--team", url], capsys)
    assert code == 1 and says in err and "hunter2" not in err and err.count("\n") == 1


def test_auth_failure_names_the_problem_not_the_password(team_url: str, cluster: Cluster, capsys: Any) -> None:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS alice")
        conn.execute("CREATE ROLE alice LOGIN PASSWORD 'right-one'")
    bad = team_url.replace("tokentop@", "alice:s3cret-pw@")
    code, out, err = run_cli(["report", "--json", "--team", bad], capsys)
    assert code == 1 and "authentication failed" in err and "s3cret-pw" not in err


def test_sync_failure_keeps_everything_local(two: tuple[Machine, Machine], capsys: Any) -> None:
    a, _ = two
    code, out, err = a.sync("postgresql://tokentop:pw@127.0.0.1:1/x")
    assert code == 1 and "connection refused" in err and "pw@" not in err
    assert a.report()["totals"]["calls"] == 30  # the local ledger has everything


def test_the_url_comes_from_the_environment_or_a_private_file(two: tuple[Machine, Machine], team_url: str,
                                                              capsys: Any, monkeypatch: Any,
                                                              tmp_path: Path) -> None:
    a, _ = two
    a.sync(team_url)
    monkeypatch.setenv("TOKENTOP_TEAM_URL", team_url)
    code, out, _ = run_cli(["report", "--json", "--team"], capsys)
    assert code == 0 and json.loads(out)["totals"]["calls"] == 30
    monkeypatch.delenv("TOKENTOP_TEAM_URL")
    conf = tmp_path / "config" / "team.url"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(team_url + "\n")
    conf.chmod(0o644)
    code, _, err = run_cli(["report", "--json", "--team"], capsys)
    assert code == 1 and "chmod 600" in err
    conf.chmod(0o600)
    code, out, _ = run_cli(["report", "--json", "--team"], capsys)
    assert code == 0 and json.loads(out)["totals"]["calls"] == 30


def test_redact_masks_passwords_in_urls_and_keyword_strings() -> None:
    assert redact("failed for postgresql://bob:pa55@db/x") == "failed for postgresql://bob:***@db/x"
    assert redact("host=db password=pa55 user=bob") == "host=db password=*** user=bob"


def fresh_totals(url: str, machines: frozenset[str] | None = None) -> dict[str, Any]:
    """What `report --json --team` computes (a new engine; the CLI's stdout is Textual's inside run_test)."""
    engine = TeamEngine(TeamStore(url), parse_tz("UTC"))
    engine.set_scope(machines)
    engine.start()
    return engine.report(Filter(tz=parse_tz("UTC")))["totals"]


async def all_time_and_listening(app: Any, engine: TeamEngine, pilot: Any) -> None:
    """A team TUI over all time, once its viewer LISTENs."""
    app.preset = "all"
    await pilot.pause()
    t0 = time.monotonic()
    while not engine.listening and time.monotonic() - t0 < 10:
        await pilot.pause(0.05)


async def test_team_tui_shows_every_machine_with_machine_chips_and_updates_on_notify(
        two: tuple[Machine, Machine], team_url: str, capsys: Any) -> None:
    from tokentop.ui.app import TokentopApp

    from tests.tui_support import text_of

    a, b = two
    a.sync(team_url)
    b.sync(team_url)
    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    # the dashboard reads no single calls (no 5-hour block: like headroom, one account's, shown per machine)
    engine.store.calls = lambda *a, **k: pytest.fail("a team's single calls read")  # type: ignore[method-assign]
    app = TokentopApp(engine, clock=lambda: 1_795_000_000.0)  # 2026-11-18 (the calls are on 11-20)
    async with app.run_test(size=(120, 30)) as pilot:
        await all_time_and_listening(app, engine, pilot)
        app.refresh_view()
        assert app.view["totals"]["calls"] == 50
        assert app.view["totals"] == fresh_totals(team_url)
        chips = [c["model"] for c in app.view["machine_chips"]]
        assert sorted(chips) == ["alpha", "beta"] and app.screen.query_one("#machine-chips").display
        sessions = app.screen.query_one("#sessions")
        assert "machine" in [c.label for c in sessions.columns]
        assert "2 machines" in text_of(app, "#status") and "live (notify)" in text_of(app, "#status")

        def focus_drawn(bar: str) -> bool:  # the focused chip is drawn on the bar the chip keys act on only
            return any(s.style and s.style.underline for s in app.screen.query_one(bar).render_line(0))

        assert focus_drawn("#chips") and not focus_drawn("#machine-chips")
        await pilot.press("g", "exclamation_mark")  # solo the first machine
        await pilot.pause()
        assert focus_drawn("#machine-chips") and not focus_drawn("#chips")
        solo = chips[0]
        assert app.machines == (solo,)
        assert app.view["totals"] == fresh_totals(team_url, frozenset({solo}))
        assert [c["model"] for c in app.view["machine_chips"]] == chips  # the other chip stays, off
        await pilot.press("0")
        await pilot.pause()
        assert app.machines is None and app.view["totals"]["calls"] == 50
        users = [c["model"] for c in app.view["user_chips"]]
        assert users == [r["user"] for r in app.view["by_user"]] and len(users) == 1
        await pilot.press("g", "1")  # the user bar: toggling the only user off shows nothing
        await pilot.pause()
        assert app.users == () and app.view["totals"]["calls"] == 0
        assert "no users selected" in str(app.screen.query_one("#user-chips").render())
        await pilot.press("0", "g")  # all users; back on the model bar
        await pilot.pause()
        assert app.users is None and app.view["totals"]["calls"] == 50

        b.calls(5, start=100)  # beta works on; its sync lands; NOTIFY wakes the viewer
        b.sync(team_url)
        t0 = time.monotonic()
        while app.view["totals"]["calls"] != 55 and time.monotonic() - t0 < 10:
            await pilot.pause(0.05)
        assert app.view["totals"]["calls"] == 55
        # folded in as a change (old sums out, new in): the same up to the last bit of the float cost
        assert app.view["totals"] == pytest.approx(fresh_totals(team_url), rel=1e-12)
        assert app.active_block is None


def test_watch_sync_to_pushes_continuously_and_rides_out_a_server_restart(
        two: tuple[Machine, Machine], team_url: str, cluster: Cluster) -> None:
    import os
    import signal
    import subprocess
    import sys

    a, _ = two
    env = {**os.environ, "TOKENTOP_TEAM_URL": team_url}
    p = subprocess.Popen([sys.executable, "-m", "tokentop.cli", "watch", "--json", "--sync-to", "--as-machine",
                          "alpha", *a.opts()], stdout=subprocess.PIPE, text=True, env=env)
    store_count = lambda: TeamStore(team_url).count()  # noqa: E731

    def until(cond: Any, secs: float = 15) -> bool:
        t0 = time.monotonic()
        while time.monotonic() - t0 < secs:
            if cond():
                return True
            time.sleep(0.05)
        return False

    try:
        first = json.loads(p.stdout.readline())
        assert first["totals"]["calls"] == 30 and "sync" in first
        assert until(lambda: store_count() == 30)
        cluster.stop("fast")
        try:
            a.calls(7, start=200)  # written while the server is down: read, counted, queued
            line = json.loads(p.stdout.readline())
            assert line["totals"]["calls"] == 37
        finally:
            cluster.start()
        assert until(lambda: store_count() == 37, 40)  # retried with back-off, nothing lost
        a.calls(3, start=300)
        assert until(lambda: store_count() == 40)
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        p.kill()


async def test_tui_sync_to_pushes_and_shows_the_sync_state(two: tuple[Machine, Machine], team_url: str) -> None:
    from tokentop import cli
    from tokentop.config import Settings
    from tokentop.ui.app import TokentopApp

    from tests.tui_support import text_of

    a, _ = two
    args = cli.build_parser().parse_args([*a.opts(), "--sync-to", team_url, "--as-machine", "alpha"])
    engine = cli.make_engine(args, Settings.load(), parse_tz("UTC"))
    app = TokentopApp(engine, syncer=cli.make_syncer(args, engine, args.sync_to), live=False)
    async with app.run_test(size=(120, 30)) as pilot:
        t0 = time.monotonic()
        while "sync ✓" not in text_of(app, "#status") and time.monotonic() - t0 < 15:
            await pilot.pause(0.05)
        assert "sync ✓" in text_of(app, "#status")
        assert TeamStore(team_url).count() == 30


async def test_two_machines_demo_histories_appear_live_in_one_team_tui(tmp_path: Path, team_url: str) -> None:
    from tokentop.demo import TeamDemo
    from tokentop.ui.app import TokentopApp

    from tests.tui_support import NOW

    demo = TeamDemo(tmp_path, team_url, NOW)
    demo.push()
    local = [e.report(Filter(tz=parse_tz("UTC")))["totals"] for _, e, _ in demo.machines]
    app = TokentopApp(TeamEngine(TeamStore(team_url), parse_tz("UTC")), clock=lambda: NOW)
    async with app.run_test(size=(160, 40)) as pilot:
        app.preset = "all"
        t0 = time.monotonic()
        while not app.engine.listening and time.monotonic() - t0 < 10:
            await pilot.pause(0.05)
        app.refresh_view()
        v = app.view
        assert {r["machine"]: r["calls"] for r in v["by_machine"]} == {
            "laptop": local[0]["calls"], "ci-runner": local[1]["calls"]}
        assert v["totals"]["calls"] == local[0]["calls"] + local[1]["calls"]
        assert v["totals"]["output_tokens"] == local[0]["output_tokens"] + local[1]["output_tokens"]
        before = v["totals"]["calls"]
        for i in range(3):
            demo.step(NOW + i)
        t0 = time.monotonic()
        while app.view["totals"]["calls"] == before and time.monotonic() - t0 < 10:
            await pilot.pause(0.05)
        assert app.view["totals"]["calls"] > before


def test_a_ledger_on_postgres_is_part_of_the_team_without_a_sync(two: tuple[Machine, Machine], team_url: str,
                                                                 capsys: Any, monkeypatch: Any) -> None:
    a, b = two
    a.sync(team_url)
    monkeypatch.setenv("DATABASE_URL", team_url)  # selects the PostgreSQL ledger
    monkeypatch.setenv("TOKENTOP_MACHINE", "beta")
    opts = ["--claude-dir", str(b.claude), "--data-root", str(b.data), "--tz", "UTC"]
    code, out, err = run_cli(["report", "--json", *opts], capsys)
    assert code == 0, err
    assert json.loads(out)["totals"]["calls"] == 20
    assert not b.ledger.exists()  # nothing local
    team = team_report(team_url, capsys)
    assert {r["machine"]: r["calls"] for r in team["by_machine"]} == {"alpha": 30, "beta": 20}
    code, _, err = run_cli(["sync", "--to", team_url, *opts], capsys)
    assert code == 2 and "no sync needed" in err


def test_the_documented_least_privilege_roles_push_and_view(two: tuple[Machine, Machine], team_url: str,
                                                            capsys: Any) -> None:
    from tokentop.core.team import ROLES_SQL

    a, b = two
    a.sync(team_url)  # the owner's first use creates the schema
    suffix = uuid.uuid4().hex[:6]
    sql = ROLES_SQL.replace("tokentop_machine", f"m_{suffix}").replace("tokentop_viewer", f"v_{suffix}")
    sql = sql.replace("PASSWORD '...'", "PASSWORD 'pw'")
    with psycopg.connect(team_url, autocommit=True) as conn:
        conn.execute(sql)
    machine_url = team_url.replace("tokentop@", f"m_{suffix}:pw@")
    viewer_url = team_url.replace("tokentop@", f"v_{suffix}:pw@")
    code, out, err = b.sync(machine_url)
    assert code == 0, err
    team = team_report(viewer_url, capsys)
    assert {r["machine"]: r["calls"] for r in team["by_machine"]} == {"alpha": 30, "beta": 20}
    b.calls(2, start=500)
    code, _, err = b.sync(viewer_url)  # a viewer cannot write: one line, nothing lost locally
    assert code == 1 and "permission denied" in err and err.count("\n") == 1 and "pw@" not in err
    assert b.report()["totals"]["calls"] == 22


def test_tls_parameters_pass_through_to_libpq(team_url: str, capsys: Any) -> None:
    # The throwaway server has no TLS: libpq honours sslmode=require and refuses, in one line.
    code, _, err = run_cli(["report", "--json", "--team", team_url + "?sslmode=require"], capsys)
    assert code == 1 and "SSL" in err and err.count("\n") == 1
    code, out, err = run_cli(["report", "--json", "--team", team_url + "?sslmode=disable"], capsys)
    assert code == 0, err


def test_rows_a_postgres_ledger_drops_leave_the_team_view(tmp_path: Path, team_url: str, capsys: Any,
                                                          monkeypatch: Any) -> None:
    from tests.builders import internal_row, write_lines

    m = Machine(tmp_path, "delta", capsys)
    log = m.data / "agents" / "s1" / "llm_costs.jsonl"
    write_lines(log, [internal_row(cost=0.5), internal_row(cost=0.25), internal_row(cost=0.125)])
    opts = ["--claude-dir", str(m.claude), "--data-root", str(m.data), "--tz", "UTC", "--ledger", team_url]
    monkeypatch.setenv("TOKENTOP_MACHINE", "delta")
    assert run_cli(["report", "--json", *opts], capsys)[0] == 0
    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    engine.start()
    assert engine.totals(Filter(tz=parse_tz("UTC")))["calls"] == 3
    write_lines(log, [internal_row(cost=2.0)])  # the log was rewritten: its old rows are gone
    code, out, err = run_cli(["report", "--json", *opts], capsys)
    assert code == 0 and json.loads(out)["totals"]["calls"] == 1, err
    engine.update()
    t = engine.report(Filter(tz=parse_tz("UTC")))
    assert (t["totals"]["calls"], t["totals"]["cost_usd"]) == (1, 2.0)
    assert all(s["calls"] for s in t["sessions"]) and all(d["calls"] for d in t["by_day"])


def test_team_view_with_sync_to_says_how_to_push_instead(team_url: str, capsys: Any) -> None:
    code, _, err = run_cli(["--team", team_url, "--sync-to", team_url], capsys)
    assert code == 2 and "--sync-to" in err and err.count("\n") == 1


def test_pushing_does_not_write_the_ledger_it_reads(two: tuple[Machine, Machine], team_url: str) -> None:
    from tokentop.core.engine import Engine, Sources
    from tokentop.core.ledger import Ledger
    from tokentop.core.pricing import PriceBook

    a, _ = two
    a.report()
    sources = Sources([a.claude], a.data, "app")
    engine = Engine(sources, PriceBook(), parse_tz("UTC"), ledger=Ledger(a.ledger, roots=sources.claude_roots))
    engine.start()
    syncer = Syncer(a.ledger, team_url, machine="alpha")
    assert syncer.run_once() == 30 and syncer.watermark() > 0
    assert not engine.ledger.others_wrote()  # else every push would make a running dashboard reload the ledger
    assert syncer.run_once() == 0


def test_report_table_groups_by_machine_and_user_with_team(two: tuple[Machine, Machine], team_url: str,
                                                           capsys: Any) -> None:
    from tokentop.core import fmt

    a, b = two
    a.sync(team_url)
    b.sync(team_url)
    team = team_report(team_url, capsys)
    code, out, err = run_cli(["report", "--team", team_url, "--tz", "UTC", "--group-by", "machine"], capsys)
    assert code == 0, err
    rows = {line.split()[0]: line.split()[1] for line in out.splitlines()[4:] if line.strip()}
    assert rows == {r["machine"]: fmt.money(r["cost_usd"]) for r in team["by_machine"]}
    code, out, _ = run_cli(["report", "--team", team_url, "--tz", "UTC", "--group-by", "user"], capsys)
    assert code == 0 and team["by_user"][0]["user"] in out
    code, _, err = run_cli(["report", "--group-by", "machine"], capsys)
    assert code == 2 and "needs --team" in err


def viewer(url: str, cache: Path | None) -> TeamEngine:
    engine = TeamEngine(TeamStore(url), parse_tz("UTC"), cache)
    engine.start()
    return engine


def test_a_viewer_starts_from_its_cache_and_reads_what_changed_since(two: tuple[Machine, Machine], team_url: str,
                                                                     tmp_path: Path) -> None:
    a, b = two
    assert a.sync(team_url)[0] == 0
    cache = tmp_path / "cache"
    first = viewer(team_url, cache)
    assert not first.rollup.from_cache and len(list(cache.glob("team-*"))) == 1
    assert oct(next(cache.glob("team-*")).stat().st_mode & 0o777) == "0o600"
    assert first.totals(Filter(tz=parse_tz("UTC")))["calls"] == 30

    assert b.sync(team_url)[0] == 0  # beta arrives, and a larger snapshot of one of alpha's calls
    a.write(cc_line("msg_alpha_3", input=13, output=5000, cr=1000, session="alpha-s1", ts="2026-11-20T13:03:00Z"))
    assert a.sync(team_url)[0] == 0
    cached = viewer(team_url, cache)
    uncached = viewer(team_url, None)
    assert cached.rollup.from_cache and not uncached.rollup.from_cache
    flt = Filter(tz=parse_tz("UTC"))
    want = uncached.report(flt, now=1.8e9)
    assert rounded(cached.report(flt, now=1.8e9)) == rounded(want)  # costs summed in another order
    assert want["totals"]["calls"] == 50
    assert want["totals"]["output_tokens"] == sum_totals(a.report(), b.report())["output_tokens"]

    # Nothing changed since: the unfiltered report (machines, users and each session's machine included) is
    # rendered from the cache's view, the parts never unpickled nor folded; the first filtered view needs them.
    again = viewer(team_url, cache)
    assert rounded(again.report(flt, now=1.8e9)) == rounded(want)
    assert again.rollup._pickled is not None and again.cube._pending is not None
    one = Filter(tz=parse_tz("UTC"), session="alpha-s1")
    assert rounded(again.report(one, now=1.8e9)) == rounded(uncached.report(one, now=1.8e9))
    assert again.rollup._pickled is None and again.cube._pending is None

    # A viewer started from the cache's view follows what lands next like any other.
    live = viewer(team_url, cache)
    a.write(cc_line("msg_alpha_new", input=3, output=9, session="alpha-s1", ts="2026-11-21T08:00:00Z"))
    assert a.sync(team_url)[0] == 0
    assert live.update() > 0
    want = viewer(team_url, None).report(flt, now=1.8e9)
    assert want["totals"]["calls"] == 51
    assert rounded(live.report(flt, now=1.8e9)) == rounded(want)


def test_a_cache_of_another_database_or_a_damaged_one_is_not_used(two: tuple[Machine, Machine], cluster: Cluster,
                                                                  tmp_path: Path) -> None:
    a, b = two
    name = "t_" + uuid.uuid4().hex[:10]
    url = cluster.url_of(name)
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    assert a.sync(url)[0] == 0
    cache = tmp_path / "cache"
    assert viewer(url, cache).totals(Filter(tz=parse_tz("UTC")))["calls"] == 30
    with psycopg.connect(cluster.url, autocommit=True) as conn:  # the same address, a new database
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    b.ledger.with_name("ledger.sqlite.sync.json").unlink(missing_ok=True)
    assert b.sync(url)[0] == 0
    again = viewer(url, cache)
    assert not again.rollup.from_cache
    assert again.totals(Filter(tz=parse_tz("UTC")))["calls"] == 20  # beta's only: nothing of the old alpha
    next(cache.glob("team-*")).write_bytes(b"\x80\x05garbage")
    damaged = viewer(url, cache)
    assert not damaged.rollup.from_cache
    assert damaged.totals(Filter(tz=parse_tz("UTC")))["calls"] == 20


def test_a_schema_1_team_database_is_upgraded_with_an_instance_id(team_url: str) -> None:
    store = TeamStore(team_url)
    store.conn.execute("DELETE FROM tokentop.meta WHERE key = 'instance'")
    store.conn.execute("UPDATE tokentop.meta SET value = '1' WHERE key = 'schema_version'")
    assert store.state()[0] == ""
    again = TeamStore(team_url)
    instance, _ = again.state()
    assert len(instance) == 32
    assert again.conn.execute("SELECT value FROM tokentop.meta WHERE key = 'schema_version'").fetchone()[0] == "2"


def test_sync_takes_the_machine_name_as_machine_too(two: tuple[Machine, Machine], team_url: str, capsys: Any) -> None:
    a, _ = two
    code, out, err = run_cli(["sync", "--to", team_url, "--machine", "laptop", *a.opts()], capsys)
    assert code == 0 and "as laptop" in out, err
    assert {r["machine"]: r["calls"] for r in team_report(team_url, capsys)["by_machine"]} == {"laptop": 30}


async def test_team_top_tasks_are_summed_in_a_thread_and_shown_while_the_team_keeps_changing(
        two: tuple[Machine, Machine], team_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The top-tasks view of a team reads the database's sums by task in a thread, on a connection of its own
    (the UI thread never reads them: a GROUP BY over every machine's calls froze the screen). A read that the team
    changed under is kept and shown, and read again at most every `SINGLE_CALLS_INTERVAL`; other machines' sums
    are never shown for the ones selected."""
    from tokentop.core.report import top_tasks
    from tokentop.ui import app as ui
    from tokentop.ui.app import TokentopApp

    from tests.tui_support import held_task_reads, shown_tasks, table_rows

    monkeypatch.setattr(ui, "TASKS_READ_HERE", 10)  # (the team has 50 calls)
    monkeypatch.setattr(ui, "SINGLE_CALLS_INTERVAL", 0.5)
    a, b = two
    grep = [{"type": "tool_use", "id": "t1", "name": "Grep", "input": {}}]
    a.write(*[cc_line(f"grep_{i}", content=grep, output=40 + i, ts="2026-11-21T09:00:00Z") for i in range(4)])
    a.sync(team_url)
    b.sync(team_url)

    def expected(machines: frozenset[str] | None = None) -> list[tuple[str, str]]:
        from tokentop.core import fmt

        engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
        engine.set_scope(machines)
        engine.start()
        return [(t["task"], fmt.money(t["cost_usd"])) for t in top_tasks(engine.cube, Filter(tz=parse_tz("UTC")))]

    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    app = TokentopApp(engine, clock=lambda: 1_795_000_000.0)
    async with app.run_test(size=(120, 30)) as pilot:
        await all_time_and_listening(app, engine, pilot)
        go, asked = threading.Event(), []
        held_task_reads(engine.cube, go, asked)  # (and a read on the UI thread fails the test)
        await pilot.press("v", "v")  # top tasks
        await pilot.pause()
        table = app.screen.query_one("#breakdown")
        assert app.panel == "tasks" and len(asked) == 1
        assert table.row_count == 0 and table.empty_text == "Summing the team's calls by task…"
        await pilot.press("s", "s", "s")  # the screen answers keys meanwhile (source: claude code, internal, all)
        assert app.source == "all" and len(asked) == 1  # one read at a time

        b.calls(5, start=100)  # the team changes while the read is held
        b.sync(team_url)
        t0 = time.monotonic()
        while app.view["totals"]["calls"] != 59 and time.monotonic() - t0 < 10:
            await pilot.pause(0.05)
        assert app.view["totals"]["calls"] == 59  # 54 + 5
        go.set()
        assert await shown_tasks(app) == expected()  # kept, although the team changed since the read began:
        assert len(asked) == 1  # shown from that read (a team that changes faster than a read would show none)
        go.clear()
        t0 = time.monotonic()
        while len(asked) < 2 and time.monotonic() - t0 < 5:  # read again (it was of an older version)
            await pilot.pause(0.05)
        assert len(asked) == 2
        await pilot.pause(0.2)
        assert [(r[0], r[2]) for r in table_rows(app, "#breakdown")] == expected()  # shown while read again
        go.set()
        await pilot.pause(1.5)
        assert len(asked) == 2  # the second read was of the version shown: nothing more to read

        go.clear()
        solo = app.view["machine_chips"][0]["model"]
        await pilot.press("g", "exclamation_mark", "g")  # solo the first machine
        await pilot.pause()
        assert app.machines == (solo,) and len(asked) == 3
        assert table.row_count == 0  # the whole team's sums are not shown for one machine, even while read
        go.set()
        assert await shown_tasks(app) == expected(frozenset({solo})) != expected()


def test_team_recent_calls_are_read_newest_first_and_equal_those_of_every_call(two: tuple[Machine, Machine],
                                                                                team_url: str) -> None:
    """The recent-calls view of a team reads the newest calls through the database's time index (a few hundred
    rows), not every call of its dates (millions in a busy team, on the UI thread)."""
    from tokentop.core.report import recent_calls

    a, b = two
    a.calls(3, start=200, model=OPUS, session="s2")
    a.sync(team_url)
    b.sync(team_url)
    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    engine.start()
    newest, every = engine.cube.newest_source, engine.store.calls
    assert newest is not None
    utc = parse_tz("UTC")
    filters = [Filter(tz=utc), Filter(tz=utc, models=(OPUS,)), Filter(tz=utc, source="internal"),
               Filter(tz=utc, session="alpha-s2"), Filter(tz=utc, mode="local")]
    for machines in (None, frozenset({"alpha"}), frozenset({"beta"})):
        engine.set_scope(machines)
        for flt in filters:
            for n in (5, 100):
                engine.cube.newest_source = newest
                engine.store.calls = lambda *a, **k: pytest.fail("every call read")  # type: ignore[method-assign]
                got = recent_calls(engine.cube, flt, n)
                engine.cube.newest_source, engine.store.calls = None, every  # type: ignore[method-assign]
                want = recent_calls(engine.cube, flt, n)
                assert [r["time"] for r in got] == [r["time"] for r in want]  # (calls of one time: either order)
                if n == 100:  # every call of the filter: the same calls
                    assert sorted(map(str, got)) == sorted(map(str, want))
    engine.set_scope(None)
    engine.cube.newest_source = newest
    assert [r["session"] for r in recent_calls(engine.cube, Filter(tz=utc, session="alpha-s2"))] == ["alpha-s2"] * 3


def test_a_team_sessions_single_calls_are_read_by_session(two: tuple[Machine, Machine], team_url: str) -> None:
    """A drill-down into one session of a team reads that session's calls (its top tasks come from them), not
    every call of the dates (7.8 s for 1 M calls, on the UI thread)."""
    from tokentop.core.report import top_tasks

    a, b = two
    a.calls(3, start=200, session="s2")
    a.sync(team_url)
    b.sync(team_url)
    engine = TeamEngine(TeamStore(team_url), parse_tz("UTC"))
    engine.start()
    assert engine.cube.call_source is not None
    read = engine.cube.call_source(None, None, "alpha-s2")
    assert len(read) == 3 and {c.session for c in read} == {"alpha-s2"}
    utc = parse_tz("UTC")
    for session, calls in (("alpha-s1", 30), ("alpha-s2", 3), ("beta-s1", 20)):
        assert sum(r["calls"] for r in top_tasks(engine.cube, Filter(tz=utc, session=session))) == calls
    assert len(engine.cube.call_source(None, None, None)) == 53  # no session: every call
