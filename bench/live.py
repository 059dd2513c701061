"""Live-mode benchmarks against `tokentop watch --json` tailing a generated corpus.

    python bench/live.py --size medium [--appends 200] [--idle 60] [--rate 5000 --seconds 10]

- append -> totals updated: the writer's clock before each append vs the `applied_at` of the line that
  counts it (p50, p95 over N appends, one append every 100 ms);
- idle CPU of the watcher over --idle seconds with no changes (from /proc, user+system);
- RSS of the watcher after ingesting the corpus, next to ccusage 20's peak RSS on the same corpus;
- sustained appends at --rate lines/s: the lag at the end of each second must not grow.

Appends go to a scratch project folder inside the corpus, removed at the end (truth.json stays valid).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import OUT, TOKENTOP, ensure_ccusage, ensure_corpus, run_measured  # noqa: E402

CLK = os.sysconf("SC_CLK_TCK")


def line(i: int, output: int = 100, ts: str = "2026-11-20T12:00:00.000Z") -> str:
    return json.dumps({
        "type": "assistant", "cwd": "/bench/live", "sessionId": "bench-live", "timestamp": ts,
        "message": {"id": f"msg_bench_{i}", "model": "claude-sonnet-4-5-20250929", "content": [],
                    "usage": {"input_tokens": 1, "output_tokens": output, "cache_creation_input_tokens": 0,
                              "cache_read_input_tokens": 0}}}, separators=(",", ":")) + "\n"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def rss_mb(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return 0.0


class Watch:
    """`tokentop watch --json` in a subprocess with its output lines collected by a reader thread."""

    def __init__(self, corpus: Path) -> None:
        ledger = OUT / f"ledger-live-{corpus.name}.sqlite"  # a bench ledger, never the user's, fresh each run
        for f in OUT.glob(ledger.name + "*"):
            f.unlink()
        self.p = subprocess.Popen([TOKENTOP, "watch", "--json", "--tz", "UTC", "--ledger", str(ledger),
                                   "--claude-dir", str(corpus / "claude"),
                                   "--data-root", str(corpus / "wb")], stdout=subprocess.PIPE, text=True)
        self.lines: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout
        for raw in self.p.stdout:
            with self.cond:
                self.lines.append((time.time(), json.loads(raw)))
                self.cond.notify_all()

    def wait_calls(self, calls: int, timeout: float = 120) -> dict:
        deadline = time.time() + timeout
        with self.cond:
            while not self.lines or self.lines[-1][1]["totals"]["calls"] < calls:
                if not self.cond.wait(max(0.0, deadline - time.time())):
                    raise SystemExit(f"watch did not reach {calls} calls")
            return self.lines[-1][1]

    def stop(self) -> None:
        self.p.terminate()
        self.p.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--appends", type=int, default=200)
    ap.add_argument("--idle", type=float, default=60)
    ap.add_argument("--rate", type=int, default=5000)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--gen", type=Path, default=HERE.parent.parent / "shared" / "bench" / "gen_corpus.py")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    corpus = ensure_corpus(a.size, a.gen)
    scratch = corpus / "claude" / "projects" / "-bench-live"
    shutil.rmtree(scratch, ignore_errors=True)
    truth_calls = json.loads((corpus / "truth.json").read_text())["totals"]["calls"]
    w = Watch(corpus)
    try:
        t0 = time.time()
        first = w.wait_calls(truth_calls)
        print(f"initial scan applied after {time.time() - t0:.2f} s: {first['totals']['calls']:,} calls")
        print(f"watcher RSS after ingest: {rss_mb(w.p.pid):.0f} MB")

        scratch.mkdir(parents=True)
        f = scratch / "bench-live.jsonl"
        f.touch()
        time.sleep(0.5)
        lat = []
        for i in range(a.appends):
            written = time.time()
            with open(f, "a") as fh:
                fh.write(line(i))
            got = w.wait_calls(truth_calls + i + 1)
            lat.append(datetime.fromisoformat(got["applied_at"]).timestamp() - written)
            time.sleep(0.1)
        q = statistics.quantiles(lat, n=100)
        print(f"append -> totals: p50 {statistics.median(lat) * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
              f"max {max(lat) * 1000:.0f} ms over {len(lat)} appends")

        if a.idle:
            time.sleep(1)
            c0 = cpu_seconds(w.p.pid)
            time.sleep(a.idle)
            used = cpu_seconds(w.p.pid) - c0
            print(f"idle CPU over {a.idle:.0f} s: {used / a.idle * 100:.2f} % of a core")

        if a.rate and a.seconds:
            base = truth_calls + a.appends
            lags = []
            n = 0
            step = max(1, a.rate // 100)
            start = time.time()
            for sec in range(a.seconds):
                while time.time() < start + sec + 1:
                    with open(f, "a") as fh:
                        fh.write("".join(line(a.appends + n + k) for k in range(step)))
                    n += step
                    time.sleep(max(0.0, start + n / a.rate - time.time()))
                with w.cond:
                    applied = w.lines[-1][1]["totals"]["calls"] - base
                lags.append(n - applied)
            w.wait_calls(base + n, timeout=60)
            print(f"sustained {a.rate:,} lines/s for {a.seconds} s: backlog at each second {lags} lines; "
                  f"all {n:,} applied {time.time() - start - a.seconds:.2f} s after the last write")
    finally:
        w.stop()
        shutil.rmtree(scratch, ignore_errors=True)

    ccusage = ensure_ccusage()
    if ccusage:
        env = {**os.environ, "CLAUDE_CONFIG_DIR": str(corpus / "claude")}
        peak = run_measured([str(ccusage), "claude", "daily", "--json", "--offline"], env).rss_mb
        print(f"ccusage peak RSS on the same corpus: {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
