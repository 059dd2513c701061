"""One-command benchmarks: cold `report` vs ccusage 20 on generated corpora, plus startup time.

    python bench/run.py                      # small and medium
    python bench/run.py --sizes small,medium,large --runs 3

Corpora come from ../shared/bench/gen_corpus.py (or --gen PATH) and are kept in bench/out/. ccusage 20.0.24's
native binary is installed there with npm on first use. Both tools run alternately, after one warm-up run
each (page cache), and the median wall time of each is compared in the same run; peak RSS comes from wait4.
``--runs`` is the least number of timed rounds per size: a size whose run takes under a second gets more (up to
15), so that its figures rest on a few seconds of runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
from check_truth import compare  # noqa: E402

SIZES = {
    "small": ["--sessions", "120"],
    "medium": ["--sessions", "1000", "--turns", "50"],
    "large": ["--sessions", "3000", "--turns", "60", "--tool-kb", "8"],
}
CCUSAGE_VERSION = "20.0.24"
#: What the timed runs of one size should add up to, at least (see `bench_size`).
SECONDS_PER_SIZE = 4.0
TOKENTOP = str(Path(sys.executable).with_name("tokentop"))  # the installed console script


def compile_package() -> None:
    """Byte-compile tokentop, as a regular install does. An editable install on a machine that sets
    PYTHONDONTWRITEBYTECODE (this one does) would otherwise compile every module on every start (~75 ms for
    `report`, more for the TUI), which no user pays. Every bench imports this module, so all of them get it."""
    import compileall

    import tokentop

    compileall.compile_dir(str(Path(tokentop.__file__).parent), quiet=1)


compile_package()


class Measured(NamedTuple):
    wall: float  # seconds
    rss_mb: float  # peak RSS of the process or of any of its waited-for children
    out: bytes  # stdout
    cpu: float  # user + system seconds of the process and its waited-for children (the scan workers)


def run_measured(cmd: list[str], env: dict[str, str] | None = None, stdout: int | None = None) -> Measured:
    """One run of ``cmd``, measured."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if stdout is None else stdout,
                         stderr=subprocess.DEVNULL)
    out = p.stdout.read() if p.stdout else b""
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return Measured(wall, usage.ru_maxrss / 1024, out, usage.ru_utime + usage.ru_stime)


def ensure_corpus(size: str, gen: Path) -> Path:
    path = OUT / size
    if not (path / "truth.json").exists():
        print(f"generating {size} corpus …", flush=True)
        subprocess.run([sys.executable, str(gen), str(path), *SIZES[size]], check=True)
    return path


def ensure_ccusage() -> Path | None:
    binary = OUT / "ccusage" / "node_modules" / "@ccusage" / "ccusage-linux-x64" / "bin" / "ccusage"
    if not binary.exists():
        (OUT / "ccusage").mkdir(parents=True, exist_ok=True)
        r = subprocess.run(["npm", "install", "--silent", f"ccusage@{CCUSAGE_VERSION}"], cwd=OUT / "ccusage")
        if r.returncode != 0 or not binary.exists():
            print("ccusage could not be installed: comparing without it")
            return None
    binary.chmod(0o755)
    return binary


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """The ``app/`` folder of commit ``rev``, checked out in a temporary git worktree and byte-compiled like this
    tree (for A/B runs against another commit); removed afterwards."""
    root = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(root), "worktree", "add", "--detach", str(tree), rev], check=True,
                       capture_output=True)
        try:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "app")], check=True)
            yield tree / "app"
        finally:
            subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(tree)], capture_output=True)


def tokentop_cmd(corpus: Path, ledger: Path | None = None) -> list[str]:
    return [TOKENTOP, "report", "--json", "--tz", "UTC",
            "--claude-dir", str(corpus / "claude"), "--data-root", str(corpus / "wb"),
            "--internal-project", "work-buddy", *(["--ledger", str(ledger)] if ledger else ["--no-ledger"])]


def bench_size(size: str, corpus: Path, ccusage: Path | None, runs: int) -> dict[str, object]:
    mb = sum(f.stat().st_size for f in corpus.rglob("*") if f.is_file()) / 1e6
    tt = tokentop_cmd(corpus)
    cc_env = {**os.environ, "CLAUDE_CONFIG_DIR": str(corpus / "claude")}
    cc = [str(ccusage), "claude", "daily", "--json", "--offline"] if ccusage else None
    first = run_measured(tt)  # warm-up, and the correctness check
    out = first.out
    # A short run is noisier (a slow moment of the VM weighs more): runs of under a second or so are repeated
    # until they add up to a few seconds (the small corpus: ~13 rounds instead of 3)
    runs = max(runs, min(15, round(SECONDS_PER_SIZE / first.wall)))
    errors = compare(json.loads(out), json.loads((corpus / "truth.json").read_text()))
    if cc:
        run_measured(cc, cc_env)
    # The ledger: cold ingests into a fresh one (taking turns with the runs without it, so both see the same
    # noise), then warm starts on the unchanged corpus.
    ledger = OUT / f"ledger-{size}.sqlite"
    tt_ledger = tokentop_cmd(corpus, ledger)
    tt_runs, cc_runs, ledger_runs = [], [], []
    for _ in range(runs):
        tt_runs.append(run_measured(tt))
        if cc:
            cc_runs.append(run_measured(cc, cc_env))
        for f in OUT.glob(f"ledger-{size}.sqlite*"):
            f.unlink()
        ledger_runs.append(run_measured(tt_ledger))
    tt_wall = statistics.median(m.wall for m in tt_runs)
    tt_rss = max(m.rss_mb for m in tt_runs)
    row: dict[str, object] = {"size": size, "MB": round(mb), "runs": runs,
                              "truth": "OK" if not errors else f"{len(errors)} errors",
                              "tokentop_s": round(tt_wall, 2), "tokentop_MB_rss": round(tt_rss)}
    if cc_runs:
        cc_wall = statistics.median(m.wall for m in cc_runs)
        row.update({"ccusage_s": round(cc_wall, 2), "ccusage_MB_rss": round(max(m.rss_mb for m in cc_runs)),
                    "ratio": round(tt_wall / cc_wall, 2)})
    cold_ledger = statistics.median(m.wall for m in ledger_runs)
    warm = [run_measured(tt_ledger) for _ in range(runs)]
    warm_errors = compare(json.loads(warm[-1].out), json.loads((corpus / "truth.json").read_text()))
    # CPU seconds (every process): a scan keeps both cores of a 2-core machine busy, so what the ledger adds in
    # CPU shows up in the wall time
    row.update({"tokentop_cpu_s": round(statistics.median(m.cpu for m in tt_runs), 2),
                "cold_with_ledger_s": round(cold_ledger, 2),
                "cold_with_ledger_cpu_s": round(statistics.median(m.cpu for m in ledger_runs), 2),
                # each run with the ledger over the run without it just before (the machine drifts over a bench)
                "ledger_vs_no_ledger": round(statistics.median(
                    b.wall / a.wall for a, b in zip(tt_runs, ledger_runs, strict=True)), 2),
                "warm_s": round(statistics.median(m.wall for m in warm), 2),
                "warm_truth": "OK" if not warm_errors else f"{len(warm_errors)} errors",
                "ledger_MB": round(ledger.stat().st_size / 1e6)})
    for e in (errors + warm_errors)[:10]:
        print("  truth:", e)
    return row


def bench_startup(runs: int = 7) -> float:
    with tempfile.TemporaryDirectory() as empty:
        cmd = [TOKENTOP, "report", "--json", "--claude-dir", empty, "--data-root", empty, "--no-ledger"]
        return statistics.median(run_measured(cmd).wall for _ in range(runs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="small,medium")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gen", type=Path, default=HERE.parent.parent / "shared" / "bench" / "gen_corpus.py")
    ap.add_argument("--no-ccusage", action="store_true")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    ccusage = None if a.no_ccusage else ensure_ccusage()
    print(f"machine: {os.cpu_count()} cores · python {sys.version.split()[0]}")
    print(f"startup (empty corpus, report --json): {bench_startup():.3f} s")
    failed = False
    for size in a.sizes.split(","):
        corpus = ensure_corpus(size.strip(), a.gen)
        row = bench_size(size.strip(), corpus, ccusage, a.runs)
        failed |= row["truth"] != "OK" or row["warm_truth"] != "OK"
        print("  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
