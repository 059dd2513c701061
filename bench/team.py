"""Team mode on a throwaway local PostgreSQL: sync throughput, team report over 1M rows, NOTIFY → viewer latency.

    python bench/team.py                 # 1,000,000 calls (sync), 10 machines × 100,000 (report), 50 notifies
    python bench/team.py --calls 200000  # smaller

Calls are synthetic but shaped like real use (3,000 sessions over 90 days, a few models and projects, quarter
hours with several calls each). The cluster is started with tests/pgcluster.py (initdb + pg_ctl, fsync off)
and removed at the end. `report --team --json` is timed as a whole process (Python start-up included): once
without the viewer's cache (the whole rollup read), then ``--runs`` times from it; its totals are checked
against the sum of the machines' own ledgers.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import psycopg  # noqa: E402
from tokentop.core.filters import Filter, parse_tz  # noqa: E402
from tokentop.core.ledger import Ledger  # noqa: E402
from tokentop.core.records import Call  # noqa: E402
from tokentop.core.team import Syncer, TeamStore  # noqa: E402
from tokentop.core.team_engine import TeamEngine  # noqa: E402

from tests.pgcluster import Cluster  # noqa: E402

MODELS = ["claude-sonnet-4-5-20250929", "claude-opus-4-5-20251101", "claude-haiku-4-5-20251001"]
PROJECTS = ["webshop", "infra-tools", "docs-site", "ml-pipeline", "payments", "work-buddy"]
TOKENTOP = str(Path(sys.executable).with_name("tokentop"))


def make_ledger(path: Path, n: int, seed: int) -> None:
    """A local ledger of ``n`` calls: sessions of ~100 calls 20 s apart over the last 90 days."""
    rng = random.Random(seed)
    now = time.time()
    ledger = Ledger(path)
    sessions = [(f"{seed:02d}-{i:05d}-sess", rng.choice(PROJECTS), now - rng.uniform(0, 90 * 86400))
                for i in range(max(1, n // 100))]
    batch: list[Call] = []
    ledger.bulk(True)
    ledger.mark_rollup_stale()
    for i in range(n):
        session, project, start = sessions[i % len(sessions)]
        ts = start + (i // len(sessions)) * 20.0
        model = MODELS[rng.randrange(3)]
        out = rng.randint(50, 4000)
        batch.append(Call("claude_code", ts, model, project, session, "cloud", rng.randint(1, 50), out,
                          rng.randint(0, 20000), rng.randint(0, 200000), out * 15e-6, f"msg_{seed}_{i}",
                          "Edit", 0, 0, "standard", "", f"/x/{session}.jsonl", i))
        if len(batch) == 50_000:
            ledger.commit(batch, rollup=False)
            batch = []
    ledger.commit(batch, rollup=False)
    ledger.rebuild_rollup()
    ledger.bulk(False)
    ledger.close()


def new_db(cluster: Cluster, name: str) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return cluster.url_of(name)


def bench_sync(cluster: Cluster, tmp: Path, n: int) -> dict[str, float]:
    path = tmp / "one.sqlite"
    make_ledger(path, n, seed=1)
    url = new_db(cluster, "sync_bench")
    s = Syncer(path, url, machine="m00")
    t = time.perf_counter()
    pushed = s.run_once()
    wall = time.perf_counter() - t
    assert pushed == n and TeamStore(url).count() == n
    t = time.perf_counter()
    again = s.run_once()
    resync = time.perf_counter() - t
    return {"calls": n, "sync_s": wall, "calls_per_s": n / wall, "resync_nothing_new_s": resync, "again": again}


def bench_report(cluster: Cluster, tmp: Path, per_machine: int, machines: int, runs: int) -> dict[str, float]:
    url = new_db(cluster, "report_bench")
    load = 0.0
    for m in range(machines):  # each machine its own sessions
        path = tmp / f"m{m}.sqlite"
        make_ledger(path, per_machine, seed=10 + m)
        t = time.perf_counter()
        Syncer(path, url, machine=f"machine-{m:02d}").run_once()
        load += time.perf_counter() - t
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        rollup_rows = conn.execute("SELECT count(*) FROM tokentop.rollup").fetchone()[0]
    # The first run reads the whole rollup (folded to days by the server); later ones start from the viewer's
    # cache and read only what changed since (nothing, here).
    env = {**os.environ, "TOKENTOP_TEAM_URL": url, "TOKENTOP_CACHE_DIR": str(tmp / "viewer-cache")}
    times = []
    out = b""
    t = time.perf_counter()
    subprocess.run([TOKENTOP, "report", "--json", "--team", "--tz", "UTC"], env=env, check=True, capture_output=True)
    first = time.perf_counter() - t
    for _ in range(runs):
        t = time.perf_counter()
        out = subprocess.run([TOKENTOP, "report", "--json", "--team", "--tz", "UTC"], env=env, check=True,
                             capture_output=True).stdout
        times.append(time.perf_counter() - t)
    rep = json.loads(out)
    assert rep["totals"]["calls"] == per_machine * machines == sum(
        Ledger(tmp / f"m{m}.sqlite").count() for m in range(machines)), rep["totals"]
    t = time.perf_counter()
    engine = TeamEngine(TeamStore(url), parse_tz("UTC"))
    engine.start()
    engine.report(Filter(tz=parse_tz("UTC")))
    inproc = time.perf_counter() - t
    views = single_call_views(engine)
    t = time.perf_counter()
    py = subprocess.run([sys.executable, "-c", "import tokentop.cli"], check=True)
    startup = time.perf_counter() - t
    del py
    return {"rows": per_machine * machines, "machines": machines, "rollup_rows": rollup_rows, "load_s": load,
            "report_json_first_run_s": first,
            "report_json_median_s": statistics.median(times), "report_json_min_s": min(times),
            "in_process_load_and_report_s": inproc, "python_import_s": startup, **views}


def single_call_views(engine: TeamEngine) -> dict[str, float]:
    """The dashboard's views of single calls over all time (median of 3): recent calls, newest first through the
    time index, and, as before, by reading every call; the sums by task that the top-tasks view reads (in a thread,
    on a connection of its own)."""
    from tokentop.core.report import recent_calls

    flt = Filter(tz=parse_tz("UTC"))

    def median_s(work: Any) -> float:
        times = []
        for _ in range(3):
            t = time.perf_counter()
            work()
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    newest = engine.cube.newest_source
    out = {"recent_calls_s": median_s(lambda: recent_calls(engine.cube, flt))}
    engine.cube.newest_source = None
    out["recent_calls_reading_every_call_s"] = median_s(lambda: recent_calls(engine.cube, flt))
    engine.cube.newest_source = newest
    out["task_sums_read_s"] = median_s(lambda: engine.store.task_sums_later(None, None)())
    return out


def bench_notify(cluster: Cluster, tmp: Path, n: int) -> dict[str, float]:
    url = new_db(cluster, "notify_bench")
    store = TeamStore(url)
    engine = TeamEngine(TeamStore(url), parse_tz("UTC"))
    engine.start()
    stop, ready = threading.Event(), threading.Event()
    seen: list[float] = []
    t = threading.Thread(target=engine.listen, args=(lambda _n: seen.append(time.perf_counter()), stop, ready),
                         daemon=True)
    t.start()
    ready.wait(10)
    lat = []
    for i in range(n):
        row = ("m1", "u", "claude_code", f"k{i}", True, time.time(), MODELS[0], "p", "s", "cloud", 1, 2, 0, 0,
               0.01, "t", 0, 0, "standard", "", "f", i, "bench", "")
        before = len(seen)
        t0 = time.perf_counter()
        store.push([row])
        while len(seen) == before and time.perf_counter() - t0 < 5:
            time.sleep(0.0005)
        lat.append((seen[-1] - t0) * 1000 if len(seen) > before else 5000.0)
        time.sleep(0.05)
    stop.set()
    t.join(5)
    lat.sort()
    return {"notifies": n, "p50_ms": statistics.median(lat), "p95_ms": lat[int(0.95 * (n - 1))], "max_ms": lat[-1]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=1_000_000, help="calls synced from one machine")
    ap.add_argument("--machines", type=int, default=10, help="machines in the team report")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--notifies", type=int, default=50)
    args = ap.parse_args()
    cluster = Cluster()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps({"sync": bench_sync(cluster, Path(tmp), args.calls)}), flush=True)
            print(json.dumps({"team_report": bench_report(cluster, Path(tmp), args.calls // args.machines,
                                                          args.machines, args.runs)}), flush=True)
            print(json.dumps({"notify": bench_notify(cluster, Path(tmp), args.notifies)}), flush=True)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
