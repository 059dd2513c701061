"""Wall-clock A/B of `report --json` between another commit and this tree, in alternating runs.

    python bench/ab.py --base HEAD~2                       # cold with a new ledger each run, medium, 6 pairs
    python bench/ab.py --base 410dabd --size large --mode cold-no-ledger --runs 4
    python bench/ab.py --base HEAD~1 --mode warm           # unchanged corpus, each tree its own ingested ledger
    python bench/ab.py --base HEAD~3 --mode live --size large --keys ddd --runs 1   # the TUI's CPU (tui.live_cpu)
    python bench/ab.py --base HEAD~1 --mode first-frame --runs 10   # the TUI's first frame (tui.first_frame)

On a shared 2-core VM wall times swing by ±30 % from minute to minute; runs of the two trees alternate so both
see the same machine, and the medians are compared. (For a deterministic count of a warm start's work, see
instructions.py.) The other commit is checked out in a temporary git worktree and byte-compiled like this one.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from instructions import python_cmd, python_env  # noqa: E402
from run import checkout, ensure_corpus, tokentop_cmd  # noqa: E402  (byte-compiles this tree on import)

MODES = ("cold-ledger", "cold-no-ledger", "warm", "live", "first-frame")


def timed(app: Path, args: list[str]) -> float:
    """Wall seconds of one ``tokentop <args>`` run from the package in ``app``."""
    t = time.perf_counter()
    subprocess.run(python_cmd(app, args), check=True, stdout=subprocess.DEVNULL, env=python_env(app))
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the commit to compare this tree with")
    ap.add_argument("--size", default="medium")
    ap.add_argument("--mode", choices=MODES, default="cold-ledger")
    ap.add_argument("--runs", type=int, default=6, help="alternating pairs")
    ap.add_argument("--gen", type=Path, default=HERE.parent.parent / "shared" / "bench" / "gen_corpus.py")
    ap.add_argument("--keys", default="", help="live: keys pressed before measuring (ddd: the whole history)")
    a = ap.parse_args()
    corpus = ensure_corpus(a.size, a.gen)
    with contextlib.ExitStack() as stack:
        trees = {a.base: stack.enter_context(checkout(a.base)), "this tree": HERE.parent / "app"}
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        ledgers = {name: tmp / f"ledger-{i}.sqlite" for i, name in enumerate(trees)}
        if a.mode in ("warm", "live", "first-frame"):  # each tree ingests its own (schemas may differ)
            for name, app in trees.items():
                timed(app, tokentop_cmd(corpus, ledgers[name])[1:])
        if a.mode == "live":
            from tui import live_cpu

            print(f"the TUI's CPU in % of one core, {a.size}, keys {a.keys!r}, alternating runs:")
            for _ in range(a.runs):
                for name, app in trees.items():
                    cpu = live_cpu(corpus, ledgers[name], keys=a.keys, env=python_env(app),
                                   command=lambda args, app=app: python_cmd(app, args))
                    print(f"  {name:>12}: {cpu}", flush=True)
            return 0
        times: dict[str, list[float]] = {name: [] for name in trees}
        if a.mode == "first-frame":  # as bench/tui.py times it: warm, its clock after the newest call, 80x24
            from instructions import ENTRY
            from tui import as_of, first_frame, newest_call, tui_cmd

            marker = f"{sum(1 for p in corpus.rglob('*.jsonl')):,} files"  # the status line, with the data
            for name, app in trees.items():  # untimed: a first start writes what the next ones read (parsed CSS)
                first_frame(as_of(tui_cmd(corpus, ledgers[name]), newest_call(ledgers[name]) + 60, ENTRY), marker,
                            env=python_env(app))
            for _ in range(a.runs):
                for name, app in trees.items():
                    cmd = as_of(tui_cmd(corpus, ledgers[name]), newest_call(ledgers[name]) + 60, ENTRY)
                    times[name].append(first_frame(cmd, marker, env=python_env(app))[0])
        else:
            for _ in range(a.runs):
                for name, app in trees.items():
                    ledger = None if a.mode == "cold-no-ledger" else ledgers[name]
                    if a.mode == "cold-ledger":
                        for f in tmp.glob(ledgers[name].name + "*"):
                            f.unlink()
                    times[name].append(timed(app, tokentop_cmd(corpus, ledger)[1:]))
        medians = {name: statistics.median(t) for name, t in times.items()}
        what = "TUI first frame (warm)" if a.mode == "first-frame" else f"{a.mode} report --json"
        print(f"{what}, {a.size}, median of {a.runs} alternating runs:")
        for name, t in times.items():
            print(f"  {name:>12}: {medians[name]:.3f} s  ({' '.join(f'{x:.2f}' for x in t)})")
        print(f"  ratio this tree / {a.base}: {medians['this tree'] / medians[a.base]:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
