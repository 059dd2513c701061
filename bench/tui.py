"""TUI speed on a generated corpus: the view-model cost of a filter key, and the first frame on a warm start.

    python bench/tui.py --size medium

- filter key: `Engine.dashboard(filter)` (everything a redraw recomputes) for each filter the keys produce,
  median of 20 runs each, as the app computes it once its scan is done (`gc.collect(); gc.freeze()`, the cells'
  plan made, the sessions table's rows only); and as a one-shot `report` does (no plan, every session);
- first frame: `tokentop` over a warm ledger in an 80x24 pseudo-terminal, its clock a minute after the corpus's
  newest call (`as_of`: the default 7 days hold data), from launch to the first output that shows the loaded
  data (what a user sees, drawing included); also opened on the whole history (`--range all`); next to a bare
  Textual app's first frame in alternating runs (the floor on this machine: Python and Textual starting);
- start-up frames: at 80x24 and 160x48, which frames after that first one still changed the screen's text (the
  first frame should be the final one);
- filter key redraw: in that terminal, over the whole history, from a key to the first byte of the frame it
  caused and to the last byte of the frames it caused;
- views from the ledger: top tasks, recent calls and a drill-down's top tasks as a warm start computes them;
- filter keys in the other views (by project, top tasks, recent calls) the same way; in the top-tasks view, `d`
  into date ranges whose sums by task were not read yet;
- live CPU: the dashboard's CPU (from /proc) while idle, then while new calls arrive at 2 and 10 per second; the
  same in the top-tasks view over all time (its sums come from the ledger).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import os
import re
import select
import statistics
import struct
import subprocess
import sys
import termios
import time
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import OUT, TOKENTOP, ensure_corpus  # noqa: E402

ANSI = re.compile(rb"\x1b\[[0-9;?<>=]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\\\)|\x1b[=>()][0-9A-Za-z]?")


#: The baseline: the least a Textual app does before its first frame (import Textual, start, draw one line).
BARE_TEXTUAL = """
from textual.app import App
from textual.widgets import Static

class Bare(App):
    BINDINGS = [("q", "quit")]

    def compose(self):
        yield Static("bare textual app ready")

Bare().run()
"""


def tui_cmd(corpus: Path, ledger: Path, date_range: str | None = None) -> list[str]:
    """The TUI over ``corpus`` with ``ledger``, opened on ``date_range`` (`--range`; default: its own, 7d)."""
    return [TOKENTOP, "--claude-dir", str(corpus / "claude"), "--data-root", str(corpus / "wb"),
            "--internal-project", "work-buddy", "--ledger", str(ledger), "--tz", "UTC",
            *(["--range", date_range] if date_range else [])]


def as_of(cmd: list[str], now: float, entry: str = "from tokentop.__main__ import run\nrun()") -> list[str]:
    """``cmd`` (the tokentop script and its arguments) as the script runs it (``entry``), its clock (``time.time``)
    at ``now`` from launch on.

    A generated corpus ends on a fixed day (gen_corpus.py's --end): from a week after it, the dashboard's
    default last 7 days are empty panels. The first-frame runs look at it as its user would, just after its
    newest call (`newest_call`): the week's sessions, chips and active dots drawn."""
    return [sys.executable, "-c", as_of_code(cmd[1:], now) + entry]


def as_of_code(args: list[str], now: float, stopped: bool = False) -> str:
    """What `as_of` runs before ``entry``: the clock moved (``stopped``: stopped at ``now``), ``sys.argv`` set."""
    clock = f"lambda: {now!r}" if stopped else f"lambda: _time() + {now - time.time()!r}"
    return f"import sys, time\n_time = time.time\ntime.time = {clock}\nsys.argv = ['tokentop', *{args!r}]\n"


def newest_call(ledger: Path) -> float:
    """The time of the newest call in ``ledger`` (the clock the first-frame runs see, a minute after it)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(ledger)) as db:
        return float(db.execute("SELECT max(ts) FROM calls").fetchone()[0])


def in_terminal(cmd: list[str], size: tuple[int, int] = (80, 24),
                env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """``cmd`` started in a ``size`` (columns, rows) pseudo-terminal of its own; returns it and the terminal's
    master end (keep reading it: an app blocks on a full terminal)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
    p = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                         env={**(os.environ if env is None else env), "TERM": "xterm-256color",
                              "COLORTERM": "truecolor"})
    os.close(slave)
    return p, master


def quit_app(p: subprocess.Popen[bytes], master: int, timeout: float = 5.0) -> None:
    """Press ``q`` and wait for the app to exit, reading its terminal meanwhile (an app blocks on a full terminal,
    its exit too); `subprocess.TimeoutExpired` if it has not exited after ``timeout`` seconds."""
    os.write(master, b"q")
    end = time.perf_counter() + timeout
    with contextlib.suppress(OSError):  # (EIO once the app has closed its terminal)
        while p.poll() is None and time.perf_counter() < end:
            if select.select([master], [], [], 0.05)[0]:
                os.read(master, 1 << 16)
    p.wait(max(0.0, end - time.perf_counter()))


def first_frame(cmd: list[str], marker: str, timeout: float = 20.0, keys: str = "",
                env: dict[str, str] | None = None) -> tuple[float, list[tuple[str, float, float]]]:
    """An app (`tokentop` over a warm ledger, or the baseline) in an 80x24 pseudo-terminal.

    Returns:
        Seconds from launch to the first output showing ``marker`` (text only the loaded data puts on screen,
        escape sequences removed); then, for each of ``keys`` (pressed once output has settled), the seconds
        from the key to the first byte of the frame it caused and to the last byte of the frames it caused
        (output quiet for 0.15 s after).
    """
    t0 = time.perf_counter()
    p, master = in_terminal(cmd, env=env)

    def drain(quiet: float) -> float | None:  # read until nothing came for `quiet` s: when the last byte came
        last = None
        while select.select([master], [], [], quiet)[0]:
            os.read(master, 1 << 16)
            last = time.perf_counter()
        return last

    seen, found, redraws = b"", None, []
    try:
        while found is None and time.perf_counter() - t0 < timeout:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 1 << 16)
                if marker.encode() in ANSI.sub(b"", seen):
                    found = time.perf_counter() - t0
        if found is not None and keys:
            time.sleep(1.0)  # the watcher is up, the scan's objects frozen
            drain(0.3)
            for key in keys:
                t = time.perf_counter()
                os.write(master, key.encode())
                if select.select([master], [], [], 5)[0]:
                    first = time.perf_counter()  # the first frame after the key is being written
                    last = drain(0.15) or first  # the last of the frames it caused
                    redraws.append((key, first - t, last - t))
                time.sleep(0.3)
                drain(0.1)
        quit_app(p, master)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    if found is None:
        raise SystemExit(f"first frame: {marker!r} never appeared")
    return found, redraws


CURSOR_TO = re.compile(rb"\x1b\[(\d+);(\d+)H")


def start_up_frames(cmd: list[str], marker: str, size: tuple[int, int], seconds: float = 1.5) -> str:
    """The app's frames over its first ``seconds`` in a ``size`` (columns, rows) pseudo-terminal: output that comes
    in bursts less than 10 ms apart is one frame (the terminal may get a frame in pieces); the screen's text is
    rebuilt from each frame's cursor moves. Says when the first frame showing ``marker`` came, and which later
    frames changed the text of a row."""
    cols, rows = size
    t0 = time.perf_counter()
    p, master = in_terminal(cmd, size)
    bursts: list[list[Any]] = []  # [time of its first byte, its bytes, time of its last byte]
    try:
        while time.perf_counter() - t0 < seconds:
            if select.select([master], [], [], 0.05)[0]:
                data, now = os.read(master, 1 << 16), time.perf_counter() - t0
                if bursts and now - bursts[-1][2] <= 0.010:
                    bursts[-1][1] += data
                    bursts[-1][2] = now
                else:
                    bursts.append([now, data, now])
        quit_app(p, master)
    finally:
        if p.poll() is None:
            p.kill()
        os.close(master)
    screen = [[" "] * cols for _ in range(rows)]
    first, changes = None, []
    y = x = 0  # the cursor, kept across bursts: a frame's bytes may come in two (a busy reader)
    cut = b""  # an escape sequence (or a character) cut at the end of a burst, completed by the next
    for at, data, _ in bursts:
        before = ["".join(r) for r in screen]
        data, cut = cut + data, b""
        esc = data.rfind(b"\x1b")
        if esc != -1 and not ANSI.match(data, esc):
            data, cut = data[:esc], data[esc:]
        parts = CURSOR_TO.split(data)
        for i in range(0, len(parts), 3):
            if i:
                y, x = int(parts[i - 2]) - 1, int(parts[i - 1]) - 1
            for ch in ANSI.sub(b"", parts[i]).decode(errors="ignore"):
                if ch not in "\r\n":  # (each line is placed by a cursor move)
                    if 0 <= y < rows and 0 <= x < cols:
                        screen[y][x] = ch
                    x += 1
        after = ["".join(r) for r in screen]
        changed = [y + 1 for y in range(rows) if after[y] != before[y]]
        if first is None:
            if marker in "\n".join(after):
                first = at
        elif changed:
            changes.append(f"+{(at - first) * 1000:.0f} ms rows {changed[0]}-{changed[-1]}"
                           if len(changed) > 1 else f"+{(at - first) * 1000:.0f} ms row {changed[0]}")
    if first is None:
        raise SystemExit(f"start-up frames: {marker!r} never appeared")
    return (f"{cols}x{rows}: first frame with data at {first:.2f} s; later frames that changed the screen's text: "
            + (", ".join(changes) or "none"))


def ledger_views(corpus: Path, ledger: Path) -> str:
    """The views that read single calls or their sums from the ledger after a warm start (nothing but the cells
    is in memory then): top tasks for all time and for 7 days, recent calls, and a drill-down's top tasks for the
    busiest session; median of 5 each, each a first read (the sums by task read for one date range are kept and
    tested again by filter keys, so only a key that changes the dates reads them again)."""
    from datetime import timedelta

    from tokentop.cli import open_ledger
    from tokentop.core.engine import Engine, Sources
    from tokentop.core.filters import Filter, parse_tz
    from tokentop.core.pricing import PriceBook
    from tokentop.core.report import recent_calls, top_tasks

    tz = parse_tz("UTC")
    sources = Sources([corpus / "claude"], corpus / "wb", "work-buddy")
    engine = Engine(sources, PriceBook(), tz, ledger=open_ledger(argparse.Namespace(ledger=str(ledger)), sources))
    engine.start()
    base = Filter(tz=tz)
    newest = max(day for day, *_ in engine.cube.cells)
    week = base.with_(since=date.fromisoformat(newest) - timedelta(days=6), until=date.fromisoformat(newest))
    busiest = max(engine.report(base)["sessions"], key=lambda s: s["calls"])["session"]
    views = {"top tasks (all time)": lambda: top_tasks(engine.cube, base),
             "top tasks (7 days)": lambda: top_tasks(engine.cube, week),
             "recent calls (all time)": lambda: recent_calls(engine.cube, base),
             "busiest session's top tasks": lambda: top_tasks(engine.cube, base.with_(session=busiest))}
    parts = []
    for name, view in views.items():
        times = []
        for _ in range(5):
            engine.cube.tasks_memo.clear()
            t = time.perf_counter()
            view()
            times.append(time.perf_counter() - t)
        parts.append(f"{name} {statistics.median(times) * 1000:.0f} ms")
    engine.ledger.close()
    return ", ".join(parts)


def live_cpu(corpus: Path, ledger: Path, rates: tuple[float, ...] = (2, 10), seconds: float = 10,
             keys: str = "", command: Any = None, env: dict[str, str] | None = None) -> str:
    """CPU of `tokentop` (80x24 pseudo-terminal, warm start over ``corpus``, ``keys`` pressed first) while idle,
    then while new calls arrive at each of ``rates`` per second (one line each, in a second Claude dir: the corpus
    stays as generated), in % of one core, from /proc. ``command(args)`` (the command line of ``tokentop args``)
    and ``env``: another tokentop (`ab.py --mode live`)."""
    import shutil
    import tempfile
    import threading
    from datetime import datetime, timezone

    from live import cpu_seconds, line

    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "ledger.sqlite"  # the bench ledger stays as `report` left it
        shutil.copy(ledger, copy)
        extra = Path(tmp) / "claude"
        project = extra / "projects" / "-bench-live"
        project.mkdir(parents=True)
        args = [*tui_cmd(corpus, copy)[1:], "--claude-dir", str(extra)]
        p, master = in_terminal([TOKENTOP, *args] if command is None else command(args), env=env)
        done = threading.Event()

        def drain() -> None:
            while not done.is_set():
                if select.select([master], [], [], 0.2)[0]:
                    try:
                        os.read(master, 1 << 16)
                    except OSError:
                        return

        threading.Thread(target=drain, daemon=True).start()
        try:
            time.sleep(8)  # warm start, catch-up, watcher up, the scan's objects frozen
            for key in keys:
                os.write(master, key.encode())
                time.sleep(0.5)
            time.sleep(3 if keys else 0)  # what the keys read and drew, done

            def share(work: Any) -> float:
                c0, t0 = cpu_seconds(p.pid), time.perf_counter()
                work()
                return (cpu_seconds(p.pid) - c0) / (time.perf_counter() - t0) * 100

            parts = [f"idle {share(lambda: time.sleep(seconds)):.2f} %"]
            n = 0
            with (project / "live.jsonl").open("a") as f:
                for rate in rates:
                    def feed(rate: float = rate) -> None:
                        nonlocal n
                        t0 = time.perf_counter()
                        while time.perf_counter() - t0 < seconds:  # calls of now: every panel changes
                            f.write(line(10**6 + n, ts=datetime.now(timezone.utc).isoformat()))
                            f.flush()
                            n += 1
                            time.sleep(1 / rate)

                    parts.append(f"{rate:g} new calls/s {share(feed):.1f} %")
        finally:
            done.set()
            os.write(master, b"q")
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
            os.close(master)
    return ", ".join(parts)


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
    from tokentop.core.report import plan_of
    from tokentop.core.views import SESSION_ROWS

    def median_ms(flt: Filter, **kw: Any) -> float:
        times = []
        for _ in range(20):
            t = time.perf_counter()
            engine.dashboard(flt, **kw)
            times.append(time.perf_counter() - t)
        return statistics.median(times) * 1000

    for name, flt in filters.items():
        engine.cube.plan = None
        one_shot = median_ms(flt)
        plan_of(engine.cube)  # as the app has it after its first frame
        print(f"filter key ({name}): view model {median_ms(flt, max_sessions=SESSION_ROWS):.1f} ms in the app, "
              f"{one_shot:.1f} ms one-shot (cells {len(engine.cube.cells):,})")

    ledger = OUT / f"ledger-{a.size}.sqlite"
    subprocess.run([TOKENTOP, "report", "--json", "--tz", "UTC", "--claude-dir", str(corpus / "claude"),
                    "--data-root", str(corpus / "wb"), "--internal-project", "work-buddy", "--ledger", str(ledger)],
                   check=True, capture_output=True)  # make sure the ledger is warm
    print("views read from the ledger after a warm start: " + ledger_views(corpus, ledger))
    marker = f"{len(engine.files):,} files"  # the status line, once the ledger's data is drawn
    now = newest_call(ledger) + 60  # the corpus as its user sees it, a minute after the last call
    runs: dict[str, list[float]] = {"last 7 days (the default)": [], "whole history (--range all)": [], "bare": []}
    first_frame(as_of(tui_cmd(corpus, ledger), now), marker)  # untimed, as a user's first start: parsed CSS kept
    for _ in range(7):  # alternately, so all see the same machine
        runs["last 7 days (the default)"].append(first_frame(as_of(tui_cmd(corpus, ledger), now), marker)[0])
        runs["whole history (--range all)"].append(first_frame(as_of(tui_cmd(corpus, ledger, "all"), now),
                                                               marker)[0])
        runs["bare"].append(first_frame([sys.executable, "-c", BARE_TEXTUAL], "bare textual app ready")[0])
    bare = statistics.median(runs.pop("bare"))
    for name, frames in runs.items():
        print(f"first frame with data, warm start, {name}, in a pseudo-terminal: {statistics.median(frames):.2f} s "
              f"(median of 7; {' '.join(f'{f:.2f}' for f in frames)}); tokentop's own part (over a bare Textual "
              f"app's first frame in the same runs, {bare:.2f} s): {(statistics.median(frames) - bare) * 1000:.0f} ms")
    for size in ((80, 24), (160, 48)):
        print("start-up frames, warm start, " + start_up_frames(as_of(tui_cmd(corpus, ledger), now), marker, size))
    # Keys on the whole history (d thrice: 7d -> 30d -> week -> all), then source, mode, a chip and reset.
    _, redraws = first_frame(as_of(tui_cmd(corpus, ledger), now), marker, keys="ddd" + "sssmmm1010")
    timed = redraws[3:]
    print(f"filter key in a pseudo-terminal (all time), key to its first frame: median "
          f"{statistics.median(f for _, f, _ in timed) * 1000:.0f} ms; to the last frame it caused: median "
          f"{statistics.median(t for _, _, t in timed) * 1000:.0f} ms; " +
          " ".join(f"{k}={f * 1000:.0f}/{t * 1000:.0f}" for k, f, t in timed))
    for view, presses in (("by project", "v"), ("top tasks", "vv"), ("recent calls", "vvv")):
        _, redraws = first_frame(as_of(tui_cmd(corpus, ledger), now), marker, keys="ddd" + presses + "sssmmm")
        timed = redraws[3 + len(presses):]
        print(f"filter key in the {view} view (all time), key to its first frame: median "
              f"{statistics.median(f for _, f, _ in timed) * 1000:.0f} ms; to the last frame: median "
              f"{statistics.median(t for _, _, t in timed) * 1000:.0f} ms")
    # In the top-tasks view, d into ranges not read yet (7d -> 30d -> week -> all): the ledger's sums by task are
    # read in a thread when the range holds more than TASKS_READ_HERE calls; the key's frame shows "Summing…".
    _, redraws = first_frame(as_of(tui_cmd(corpus, ledger), now), marker, keys="vvddd")
    print("top-tasks view, d into a date range not read yet, key to its first / last frame: " +
          " ".join(f"{f * 1000:.0f}/{t * 1000:.0f} ms" for _, f, t in redraws[2:]))
    print(f"dashboard CPU in % of one core (warm start, {a.size} corpus): " + live_cpu(corpus, ledger))
    print("top-tasks view over all time, CPU in % of one core: " + live_cpu(corpus, ledger, keys="dddvv"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
