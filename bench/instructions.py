"""CPU instructions of a `report --json` (callgrind): a deterministic measure for A/B comparisons.

Wall times on a shared 2-core VM swing by ±30 % from one minute to the next; the instructions a process executes
in user space do not (within ~0.1 %). They leave out system calls and memory stalls, so they complement the
timed benchmarks (run.py), never replace them.

    python bench/instructions.py                          # this tree: empty start-up, warm start on medium
    python bench/instructions.py --sizes small,large      # warm starts on those corpora
    python bench/instructions.py --base HEAD~3            # the same at another commit, side by side
    python bench/instructions.py --tui                    # and the TUI's first frame on a warm start (medium)

Needs valgrind. The corpora are the ones bench/run.py makes (bench/out/); each tree ingests its own ledger of a
corpus once first, in a temporary folder (two commits may store different ledger schemas). The other commit is
checked out in a temporary git worktree and byte-compiled like this one.

``--tui``: the instructions of the app's own process (the UI; the warm start's forked helper runs beside it) from
launch to the first frame that shows the ledger's data, in an 80x24 pseudo-terminal, on the first size's corpus;
and a bare Textual app's first frame (bench/tui.py's `BARE_TEXTUAL`): the floor, Python and Textual starting.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import checkout, ensure_corpus, tokentop_cmd  # noqa: E402  (byte-compiles this tree on import)

ROOT = HERE.parent


def instructions(app: Path, args: list[str]) -> int:
    """User-space instructions of ``tokentop <args>`` run from the package in ``app`` (its ``app/`` folder)."""
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *python_cmd(app, args)],
                       env=python_env(app), capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not found:
        raise SystemExit(f"valgrind run failed: {r.stderr[-2000:]}")
    return int(found.group(1))


def python_cmd(app: Path, args: list[str]) -> list[str]:
    """``tokentop <args>`` with the package in ``app`` (run it with `python_env`)."""
    return [sys.executable, "-c", f"import sys; sys.argv = ['tokentop', *{args!r}]\n{ENTRY}"]


#: What the `tokentop` script runs: `tokentop.__main__.run` (older commits: `cli.run`, or `cli.main`).
ENTRY = """
try:
    from tokentop.__main__ import run
except ImportError:
    from tokentop import cli
    run = getattr(cli, "run", cli.main)
run()"""


def python_env(app: Path) -> dict[str, str]:
    """A small, fixed environment that imports tokentop from ``app``."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(app)}


#: Prepended to the code of a first-frame run: the process ends (os._exit) right after the first write to the
#: terminal that shows $FIRST_FRAME_MARKER. Textual's driver is wrapped when it is first imported, by whoever
#: imports it, so every import happens when it does in the app.
FIRST_FRAME = """
import importlib.abc, importlib.util, os, sys
MARKER = os.environ["FIRST_FRAME_MARKER"]

class Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "textual.drivers.linux_driver":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        load = spec.loader.exec_module

        def exec_module(module):
            load(module)
            write = module.LinuxDriver.write

            def written(driver, data):
                write(driver, data)
                if MARKER in data:
                    os._exit(0)

            module.LinuxDriver.write = written

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, Hook())
"""


def first_frame_instructions(code: str, env: dict[str, str], marker: str) -> int:
    """User-space instructions of ``python -c code`` (its own process, not those it forks) up to the first frame
    that shows ``marker``, run in an 80x24 pseudo-terminal."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    with tempfile.TemporaryDirectory() as logs:
        p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                              f"--log-file={logs}/%p.log", sys.executable, "-c", FIRST_FRAME + code],
                             stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                             env={**env, "TERM": "xterm-256color", "COLORTERM": "truecolor",
                                  "FIRST_FRAME_MARKER": marker})
        os.close(slave)
        deadline = time.monotonic() + 600
        try:
            while p.poll() is None and time.monotonic() < deadline:
                if select.select([master], [], [], 0.5)[0]:
                    try:
                        os.read(master, 1 << 16)
                    except OSError:  # the terminal closed with the process
                        break
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            if p.poll() is None:
                p.kill()
            os.close(master)
        log = Path(logs, f"{p.pid}.log")
        found = re.search(r"Collected : (\d+)", log.read_text() if log.exists() else "")
    if not found:
        raise SystemExit(f"first frame: {marker!r} never appeared under valgrind")
    return int(found.group(1))


def tui_first_frame(app: Path, corpus: Path, ledger: Path) -> int:
    """The TUI's first frame over ``ledger`` (ingested), run from the package in ``app``."""
    from tui import as_of_code, newest_call, tui_cmd

    files = sum(1 for _ in (corpus / "claude").rglob("*.jsonl")) + sum(1 for _ in (corpus / "wb").rglob("*.jsonl"))
    # its clock a minute after the newest call, as bench/tui.py's first frame (the last 7 days hold data); stopped
    # there: under valgrind the UI draws a minute after its warm start, whose first view it would not take then
    code = as_of_code(tui_cmd(corpus, ledger)[1:], newest_call(ledger) + 60, stopped=True) + ENTRY
    return first_frame_instructions(code, python_env(app), f"{files:,} files")  # the status line's count


def cases(sizes: list[str], gen: Path, empty: str, ledgers: Path) -> dict[str, list[str]]:
    """Case name -> arguments; ``{ledgers}`` in them is a tree's own folder of ledgers."""
    out = {"start-up (empty corpus, no ledger)": ["report", "--json", "--claude-dir", empty, "--data-root", empty,
                                                  "--no-ledger"]}
    for size in sizes:
        out[f"warm report, {size}"] = tokentop_cmd(ensure_corpus(size, gen), ledgers / f"{size}.sqlite")[1:]
    return out


def ingested(app: Path, args: list[str], ledgers: Path) -> list[str]:
    """``args`` with this tree's ledger folder, its ledger ingested once by this tree."""
    args = [a.replace("{ledgers}", str(ledgers)) for a in args]
    if "--ledger" in args and not Path(args[args.index("--ledger") + 1]).exists():
        subprocess.run(python_cmd(app, args), check=True, stdout=subprocess.DEVNULL, env=python_env(app))
    return args


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="medium")
    ap.add_argument("--base", help="a commit to compare with")
    ap.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_corpus.py")
    ap.add_argument("--tui", action="store_true", help="also the TUI's first frame on a warm start")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 1
    with contextlib.ExitStack() as stack:
        trees = {"this tree": ROOT / "app"}
        if a.base:
            trees = {a.base: stack.enter_context(checkout(a.base)), **trees}
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        empty = tmp / "empty"
        empty.mkdir()
        for i in range(len(trees)):
            (tmp / f"ledgers-{i}").mkdir()
        print(f"{'case':40}" + "".join(f"{name:>16}" for name in trees) + ("     ratio" if a.base else ""))
        sizes = [s.strip() for s in a.sizes.split(",") if s.strip()]
        for case, args in cases(sizes, a.gen, str(empty), Path("{ledgers}")).items():
            # Twice each: the first warm run of a tree may still write its snapshot to the ledger.
            counts = [min(instructions(app, ingested(app, args, tmp / f"ledgers-{i}")) for _ in range(2))
                      for i, app in enumerate(trees.values())]
            line = f"{case:40}" + "".join(f"{n / 1e6:>14.1f} M" for n in counts)
            if a.base:
                line += f"{counts[1] / counts[0]:>10.3f}"
            print(line, flush=True)
        if a.tui:
            corpus = ensure_corpus(sizes[0], a.gen)
            counts = []
            for i, app in enumerate(trees.values()):
                args = ingested(app, tokentop_cmd(corpus, tmp / f"ledgers-{i}" / f"{sizes[0]}.sqlite")[1:], tmp)
                counts.append(tui_first_frame(app, corpus, Path(args[args.index("--ledger") + 1])))
            line = f"{'TUI first frame, warm, ' + sizes[0]:40}" + "".join(f"{n / 1e6:>14.1f} M" for n in counts)
            print(line + (f"{counts[1] / counts[0]:>10.3f}" if a.base else ""), flush=True)
            from tui import BARE_TEXTUAL

            bare = first_frame_instructions(BARE_TEXTUAL, python_env(ROOT / "app"), "bare textual app ready")
            print(f"{'bare Textual app first frame (floor)':40}{bare / 1e6:>14.1f} M", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
