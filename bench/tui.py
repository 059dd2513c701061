"""TUI speed on a generated corpus: the view-model cost of a filter key, and the first frame on a warm start.

    python bench/tui.py --size medium

- filter key: `Engine.dashboard(filter)` (everything a redraw recomputes) for each filter the keys produce,
  median of 20 runs each, after `gc.collect(); gc.freeze()` as the app does once its scan is done;
- first frame: a headless app (`run_test`) over a warm ledger, from process start to the first drawn dashboard.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import OUT, TOKENTOP, ensure_corpus  # noqa: E402

FIRST_FRAME = r"""
import asyncio, sys, time
t0 = time.perf_counter()
from pathlib import Path
from tokentop.cli import build_parser, make_engine, start_early
from tokentop.config import Settings
from tokentop.core.filters import parse_tz
corpus, ledger = sys.argv[1], sys.argv[2]
args = build_parser().parse_args(["--claude-dir", corpus + "/claude", "--data-root", corpus + "/wb",
                                  "--internal-project", "work-buddy", "--ledger", ledger, "--tz", "UTC"])
engine = make_engine(args, Settings(), parse_tz("UTC"))
warming = start_early(engine)  # as `tokentop` does: the warm start overlaps Textual's import
from tokentop.ui.app import TokentopApp
app = TokentopApp(engine, live=False, warming=warming)
async def main():
    async with app.run_test(size=(80, 24)) as pilot:
        while app.scanning or app.updated_at is None:  # the first frame drawn from the loaded data
            await asyncio.sleep(0.005)
        print(time.perf_counter() - t0)
asyncio.run(main())
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="medium")
    ap.add_argument("--gen", type=Path, default=HERE.parent.parent / "shared" / "bench" / "gen_corpus.py")
    a = ap.parse_args()
    corpus = ensure_corpus(a.size, a.gen)

    from tokentop.core.engine import Engine, Sources
    from tokentop.core.filters import Filter, parse_tz
    from tokentop.core.pricing import PriceBook

    tz = parse_tz("UTC")
    engine = Engine(Sources([corpus / "claude"], corpus / "wb", "work-buddy"), PriceBook(), tz)
    engine.scan()
    gc.collect()  # as the app does once its scan is done (TokentopApp._settle)
    gc.freeze()
    base = Filter(tz=tz)
    chips = [c["model"] for c in engine.dashboard(base)["chips"]]
    filters = {"all": base, "solo model": base.with_(models=(chips[0],)), "source claude_code":
               base.with_(source="claude_code"), "mode local": base.with_(mode="local"),
               "project": base.with_(project="web"), "no models": base.with_(models=())}
    for name, flt in filters.items():
        times = []
        for _ in range(20):
            t = time.perf_counter()
            engine.dashboard(flt)
            times.append(time.perf_counter() - t)
        print(f"filter key ({name}): view model {statistics.median(times) * 1000:.1f} ms "
              f"(cells {len(engine.cube.cells):,})")

    ledger = OUT / f"ledger-{a.size}.sqlite"
    subprocess.run([TOKENTOP, "report", "--json", "--tz", "UTC", "--claude-dir", str(corpus / "claude"),
                    "--data-root", str(corpus / "wb"), "--internal-project", "work-buddy", "--ledger", str(ledger)],
                   check=True, capture_output=True)  # make sure the ledger is warm
    frames = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", FIRST_FRAME, str(corpus), str(ledger)], check=True,
                             capture_output=True, text=True).stdout
        frames.append(float(out.strip().splitlines()[-1]))
    print(f"first frame with data, warm start: {statistics.median(frames):.2f} s (median of 3)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
