"""CPU instructions of a `report --json` (callgrind): a deterministic measure for A/B comparisons.

Wall times on a shared 2-core VM swing by ±30 % from one minute to the next; the instructions a process executes
in user space do not (within ~0.1 %). They leave out system calls and memory stalls, so they complement the
timed benchmarks (run.py), never replace them.

    python bench/instructions.py                          # this tree: empty start-up, warm start on medium
    python bench/instructions.py --sizes small,large      # warm starts on those corpora
    python bench/instructions.py --base HEAD~3            # the same at another commit, side by side

Needs valgrind. The corpora and their ledgers are the ones bench/run.py makes (bench/out/); a missing ledger is
ingested once first. The other commit is checked out in a temporary git worktree and byte-compiled like this one.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import OUT, ensure_corpus, tokentop_cmd  # noqa: E402  (byte-compiles this tree on import)

ROOT = HERE.parent


def instructions(app: Path, args: list[str]) -> int:
    """User-space instructions of ``tokentop <args>`` run from the package in ``app`` (its ``app/`` folder)."""
    # What the `tokentop` script runs (`run`, which skips the teardown after a report; older commits: `main`).
    code = f"import sys; sys.argv = ['tokentop', *{args!r}]\nfrom tokentop import cli; getattr(cli, 'run', cli.main)()"
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code],
                       env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(app)},
                       capture_output=True, text=True)
    found = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or not found:
        raise SystemExit(f"valgrind run failed: {r.stderr[-2000:]}")
    return int(found.group(1))


def cases(sizes: list[str], gen: Path, empty: str) -> dict[str, list[str]]:
    out = {"start-up (empty corpus, no ledger)": ["report", "--json", "--claude-dir", empty, "--data-root", empty,
                                                  "--no-ledger"]}
    for size in sizes:
        corpus = ensure_corpus(size, gen)
        ledger = OUT / f"ledger-{size}.sqlite"
        cmd = tokentop_cmd(corpus, ledger)
        if not ledger.exists():
            print(f"ingesting {size} into {ledger} …", flush=True)
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        out[f"warm report, {size}"] = cmd[1:]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="medium")
    ap.add_argument("--base", help="a commit to compare with")
    ap.add_argument("--gen", type=Path, default=ROOT.parent / "shared" / "bench" / "gen_corpus.py")
    a = ap.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)")
        return 1
    trees = {"this tree": ROOT / "app"}
    with tempfile.TemporaryDirectory() as tmp:
        if a.base:
            base = Path(tmp) / "base"
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base), a.base], check=True,
                           capture_output=True)
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(base / "app")], check=True)
            trees = {a.base: base / "app", **trees}
        empty = Path(tmp) / "empty"
        empty.mkdir()
        try:
            print(f"{'case':40}" + "".join(f"{name:>16}" for name in trees) + ("     ratio" if a.base else ""))
            for case, args in cases([s.strip() for s in a.sizes.split(",") if s.strip()], a.gen, str(empty)).items():
                # Twice each: the first warm run of a tree may still write its snapshot to the ledger.
                counts = [min(instructions(app, args) for _ in range(2)) for app in trees.values()]
                line = f"{case:40}" + "".join(f"{n / 1e6:>14.1f} M" for n in counts)
                if a.base:
                    line += f"{counts[1] / counts[0]:>10.3f}"
                print(line, flush=True)
        finally:
            if a.base:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(Path(tmp) / "base")],
                               capture_output=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
