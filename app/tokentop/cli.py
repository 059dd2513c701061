"""Command line: argument parsing and subcommands only. Textual is imported only by the TUI commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, _lean  # noqa: F401  (_lean first: see there)
from .config import Settings, cache_dir, config_dir, default_data_root, default_ledger_path
from .core import fmt
from .core.claude_code import DEFAULT_CLEANUP_DAYS, cleanup_period_days, default_claude_dirs
from .core.engine import Engine, Sources
from .core.filters import Filter, FilterError, parse_date, parse_tz
from .core.ledger import Ledger, LedgerError
from .core.pricing import PriceBook, PriceFileError
from .core.views import DATE_PRESETS

GROUPS = ("day", "model", "project", "session", "task", "machine", "user")  # the last two with --team


class UsageError(Exception):
    """A bad option value: printed as one line, exit 2."""


def _help_width() -> int:
    try:
        columns = int(os.environ.get("COLUMNS", "")) or os.get_terminal_size(sys.stdout.fileno()).columns
    except (ValueError, OSError):
        columns = 80
    return max(columns - 2, 20)


class _Parser(argparse.ArgumentParser):
    #: Adds this (sub)parser's arguments when it is first used: argparse makes a help formatter for every
    #: argument it adds, and a run needs the arguments of one command only (about 10 ms of start-up).
    _pending: Any = None

    def error(self, message: str) -> NoReturn:
        """One clear line instead of argparse's usage dump."""
        self.exit(2, f"tokentop: error: {message} (see {self.prog} --help)\n")

    def _get_formatter(self) -> argparse.HelpFormatter:
        # argparse makes one per add_argument (to check metavars); its default width import shutil and asks
        # the terminal each time. Help is rare: ask once it is printed (COLUMNS first, as shutil does).
        return self.formatter_class(prog=self.prog, width=_help_width())  # type: ignore[call-arg]

    def lazy(self, build: Any) -> _Parser:
        self._pending = build
        return self

    def _build(self) -> None:
        if self._pending is not None:
            build, self._pending = self._pending, None
            build(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._build()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._build()
        return super().format_help()

    def format_usage(self) -> str:
        self._build()
        return super().format_usage()


def _source_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sources")
    g.add_argument("--claude-dir", action="append", type=Path, metavar="DIR",
                   help="a Claude config dir holding projects/, or that folder (repeatable; default: "
                        "$CLAUDE_CONFIG_DIR, else ~/.claude and ~/.config/claude)")
    g.add_argument("--data-root", type=Path, metavar="DIR",
                   help="app data root holding agents/ and runtime/ (env TOKENTOP_DATA_ROOT)")
    g.add_argument("--internal-project", metavar="NAME",
                   help="project of internal rows without a project field (default: data root folder name)")
    g.add_argument("--prices", type=Path, metavar="FILE",
                   help="TOML file of price overrides (default: prices.toml in the config dir)")
    g.add_argument("--tz", metavar="ZONE", help="UTC, local or an IANA zone (default: the system zone)")
    g.add_argument("--ledger", metavar="PATH|URL",
                   help="the ledger keeping every call: a SQLite file (default: ledger.sqlite in the data dir; "
                        "env TOKENTOP_LEDGER) or postgresql://… (a PostgreSQL DATABASE_URL selects it too)")
    g.add_argument("--no-ledger", action="store_true", help="read the files only, keep nothing")


def _filter_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("filters")
    g.add_argument("--source", default="all", help="all, claude_code or internal")
    g.add_argument("--since", metavar="YYYY-MM-DD", help="first day, inclusive, in --tz")
    g.add_argument("--until", metavar="YYYY-MM-DD", help="last day, inclusive, in --tz")
    g.add_argument("--models", metavar="CSV",
                   help="only these models; '' selects none (zero rows); absent selects all")
    g.add_argument("--project", metavar="SUBSTR", help="projects whose name contains this")
    g.add_argument("--mode", help="cloud or local")
    g.add_argument("--session", help="one session id")


def _team_options(p: argparse.ArgumentParser, view: bool = True) -> None:
    g = p.add_argument_group("team (PostgreSQL)")
    g.add_argument("--team", nargs="?", const="", metavar="URL",
                   help="read every machine's calls from the team database (URL, else env TOKENTOP_TEAM_URL or "
                        "DATABASE_URL, else team.url in the config dir, mode 600)")
    if view:
        g.add_argument("--machine", metavar="CSV", help="with --team: only these machines")
        g.add_argument("--user", metavar="CSV", help="with --team: only these users")


def _sync_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sync-to", nargs="?", const="", metavar="URL",
                   help="push this machine's calls to the team database continuously (URL as for --team)")
    p.add_argument("--as-machine", metavar="NAME", help="this machine's name in the team (default: hostname)")


def build_parser() -> argparse.ArgumentParser:
    """The whole CLI (each command's arguments are added when that command is parsed)."""
    p = _Parser(prog="tokentop", description="Live LLM cost, tokens and rate-limit headroom.")
    p.add_argument("--version", action="version", version=f"tokentop {__version__}")
    p.add_argument("--range", choices=DATE_PRESETS, default="7d",
                   help="the dates the dashboard opens on (default: 7d; the d key goes on from there)")
    _source_options(p)
    _team_options(p)
    _sync_option(p)
    sub = p.add_subparsers(dest="command", parser_class=_Parser)
    sub.add_parser("report", help="totals as a table or JSON").lazy(_report_args)
    sub.add_parser("watch", help="headless live mode: one JSON line of totals after every applied batch").lazy(
        _watch_args)
    sub.add_parser("sync", help="push this machine's ledger to the team database (idempotent, resumable)").lazy(
        _sync_args)
    sub.add_parser("reprice", help="recompute stored Claude Code costs with the current prices").lazy(
        _source_options)
    sub.add_parser("export", help="write the ledger's calls as CSV or JSONL").lazy(_export_args)
    sub.add_parser("log", help="record one call in <data_root>/agents/<session>/llm_costs.jsonl").lazy(_log_args)
    sub.add_parser("statusline", help="Claude Code statusline: record plan limits from stdin, print one line").lazy(
        _source_options)
    sub.add_parser("budget", help="spending limits: set, show, check (exit 1 past a hard stop), rm").lazy(
        _budget_args)
    sub.add_parser("demo", help="the TUI on a generated history that keeps moving (a temp dir, removed on exit)"
                   ).lazy(_demo_args)
    return p


def _report_args(r: argparse.ArgumentParser) -> None:
    _source_options(r)
    _filter_options(r)
    r.add_argument("--json", action="store_true", help="machine-readable output")
    r.add_argument("--group-by", choices=GROUPS, default="day",
                   help="rows of the table (default: day; machine and user with --team)")
    r.add_argument("--workers", type=int, default=None, help=argparse.SUPPRESS)
    r.add_argument("--blocks", action="store_true", help="5-hour blocks: cost, tokens, burn rate, projection")
    r.add_argument("--window", help="today, yesterday, this-week, last-week, this-month, last-7d, last-30d, all")
    r.add_argument("--compare", action="store_true", help="add the previous window of equal length, with deltas")
    r.add_argument("--top-tasks", action="store_true", help="the 15 costliest tasks (JSON: top_tasks)")
    r.add_argument("--recent", action="store_true", help="the last 20 calls, newest first (JSON: recent)")
    _team_options(r)


def _watch_args(w: argparse.ArgumentParser) -> None:
    _source_options(w)
    _filter_options(w)
    w.add_argument("--json", action="store_true", required=True, help="JSON lines on stdout (the only format)")
    w.add_argument("--poll", action="store_true", help="poll instead of inotify (network filesystems)")
    _sync_option(w)


def _sync_args(sy: argparse.ArgumentParser) -> None:
    _source_options(sy)
    sy.add_argument("--to", nargs="?", const="", metavar="URL",
                    help="the team database (default: env TOKENTOP_TEAM_URL or DATABASE_URL, else team.url in "
                         "the config dir, mode 600)")
    sy.add_argument("--as-machine", "--machine", dest="as_machine", metavar="NAME",
                    help="this machine's name in the team (default: hostname)")
    sy.add_argument("--roles", action="store_true", help="print the least-privilege roles' SQL and exit")


def _export_args(ex: argparse.ArgumentParser) -> None:
    _source_options(ex)
    ex.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    ex.add_argument("--since", metavar="YYYY-MM-DD")
    ex.add_argument("--until", metavar="YYYY-MM-DD")
    ex.add_argument("--output", "-o", type=Path, metavar="FILE", help="default: standard output")


def _log_args(lg: argparse.ArgumentParser) -> None:
    lg.add_argument("--data-root", type=Path, metavar="DIR", help="app data root (env TOKENTOP_DATA_ROOT)")
    lg.add_argument("--model", required=True)
    lg.add_argument("--input", type=int, required=True, metavar="N", help="uncached input tokens")
    lg.add_argument("--output", type=int, required=True, metavar="N")
    lg.add_argument("--cache-read", type=int, default=0, metavar="N")
    lg.add_argument("--cache-write", type=int, default=0, metavar="N", help="all cache writes (5m and 1h)")
    lg.add_argument("--cache-write-1h", type=int, default=0, metavar="N", help="the 1-hour part of the writes")
    lg.add_argument("--cost", type=float, metavar="USD", help="as you computed it (default: priced by tokentop)")
    lg.add_argument("--session", help="session folder (default: one per invocation, YYYYMMDD-<hex>)")
    lg.add_argument("--mode", choices=("cloud", "local"), default="cloud")
    lg.add_argument("--task")
    lg.add_argument("--project")


def _budget_args(bg: argparse.ArgumentParser) -> None:
    bsub = bg.add_subparsers(dest="budget_command", parser_class=_Parser, required=True)
    bset = bsub.add_parser("set", help="set a budget: SCOPE (all, a project or a model) PERIOD AMOUNT")
    bset.add_argument("scope")
    bset.add_argument("period", choices=("daily", "weekly", "monthly"))
    bset.add_argument("amount", type=float, help="USD")
    bset.add_argument("--alert-at", type=float, default=0.8, help="fraction that turns the gauge yellow (0.8)")
    bset.add_argument("--hard-stop", action="store_true", help="`budget check` exits 1 once it is exceeded")
    brm = bsub.add_parser("rm", help="remove a budget")
    brm.add_argument("scope")
    brm.add_argument("period", choices=("daily", "weekly", "monthly"))
    for name in ("show", "check"):
        bp = bsub.add_parser(name, help="status of every budget" if name == "show" else
                             "exit 1 when a hard-stop budget is exceeded (for scripts and hooks)")
        _source_options(bp)
        bp.add_argument("--json", action="store_true")
    for bp in (bset, brm, *[bsub.choices[n] for n in ("show", "check")]):
        _team_options(bp, view=False)


def _demo_args(d: argparse.ArgumentParser) -> None:
    d.add_argument("--tz", metavar="ZONE", help="UTC, local or an IANA zone (default: the system zone)")
    _team_options(d, view=False)


def make_sources(args: argparse.Namespace, settings: Settings) -> Sources:
    """Sources from options, environment and settings. A ``--claude-dir`` may name the ``projects/`` folder
    itself; one that holds none, or a ``--data-root`` that does not exist, gets a note on stderr (a typo would
    otherwise read as an empty history; live mode still waits for them to appear)."""
    claude_dirs = []
    for d in args.claude_dir or ():
        d = d.expanduser()
        if d.name == "projects" and not (d / "projects").is_dir() and d.is_dir():
            d = d.parent  # ~/.claude/projects for ~/.claude
        if not (d / "projects").is_dir():
            sys.stderr.write(f"tokentop: note: --claude-dir {d} holds no projects/ folder: no Claude Code "
                             "transcripts there\n")
        claude_dirs.append(d)
    claude_dirs = claude_dirs or default_claude_dirs()
    data_root = args.data_root or default_data_root()
    if args.data_root is not None and not args.data_root.expanduser().is_dir():
        sys.stderr.write(f"tokentop: note: --data-root {args.data_root} does not exist: no calls logged there\n")
    return Sources(claude_dirs=list(claude_dirs), data_root=data_root,
                   internal_project=args.internal_project or settings.internal_project)


def open_ledger(args: argparse.Namespace, sources: Sources) -> Ledger | None:
    """The ledger the options ask for (None with --no-ledger)."""
    if getattr(args, "no_ledger", False):
        return None
    from .core.pricing import PRICE_PATCH_VERSION, _genai_fingerprint

    roots = [*sources.claude_roots]
    if sources.data_root is not None:
        roots.append(Path(sources.data_root) / "agents")
    priced_with = f"genai-prices:{_genai_fingerprint()}+{PRICE_PATCH_VERSION}"
    target = getattr(args, "ledger", None) or os.environ.get("TOKENTOP_LEDGER")
    if not target and is_pg_url(os.environ.get("DATABASE_URL", "")):
        target = os.environ["DATABASE_URL"]
    if target and is_pg_url(target):
        from .core.pg_ledger import PgLedger

        return PgLedger(target, priced_with=priced_with, roots=roots, internal_project=sources.project_for_internal,
                        machine=getattr(args, "as_machine", None))
    path = Path(target).expanduser() if target else default_ledger_path()

    def upgrading(old: int, new: int) -> None:
        print(f"tokentop: upgrading the ledger {path} from schema {old} to {new} (once; seconds for a large "
              "history)", file=sys.stderr, flush=True)

    return Ledger(path, priced_with=priced_with, roots=roots, internal_project=sources.project_for_internal,
                  on_upgrade=upgrading)


def is_pg_url(text: str) -> bool:
    """A PostgreSQL connection URL (a ledger or team database, not a file)."""
    return text.startswith(("postgresql://", "postgres://"))


def make_engine(args: argparse.Namespace, settings: Settings, tz: Any) -> Engine:
    """Sources, prices and ledger from the options; with ``--team``, every machine's calls from the team database."""
    if getattr(args, "team", None) is not None:
        from .core.team_engine import TeamEngine

        engine = TeamEngine(team_store(args.team), tz, cache_dir())
        csv = Filter.models_from_csv
        machines, users = csv(getattr(args, "machine", None)), csv(getattr(args, "user", None))
        engine.set_scope(frozenset(machines) if machines is not None else None,
                         frozenset(users) if users is not None else None)
        return engine
    sources = make_sources(args, settings)
    return Engine(sources, make_book(args), tz, ledger=open_ledger(args, sources))


def team_store(given: str | None) -> Any:
    """The team database (URL from the argument, the environment or the 0600 config file)."""
    from .core.team import TeamStore, team_url

    return TeamStore(team_url(given or None, config_dir() / "team.url"))


def make_syncer(args: argparse.Namespace, engine: Engine, url: str | None) -> Any:
    """A Syncer pushing this machine's ledger (``--sync-to`` / ``sync --to``)."""
    from .core.team import Syncer, default_machine, team_url

    if getattr(args, "team", None) is not None:
        raise UsageError("--team views the team database and reads no local files: push this machine with "
                         "`tokentop --sync-to` or `tokentop watch --json --sync-to` in another pane")
    if engine.ledger is None:
        raise UsageError("syncing pushes the local ledger; drop --no-ledger")
    if not isinstance(engine.ledger, Ledger):
        raise UsageError("this ledger is on PostgreSQL already: every call is in the team database, no sync needed")
    return Syncer(engine.ledger.path, team_url(url or None, config_dir() / "team.url"),
                  machine=getattr(args, "as_machine", None) or default_machine(),
                  internal_project=engine.sources.project_for_internal)


def make_filter(args: argparse.Namespace, tz_arg: str | None) -> Filter:
    """The Filter the options describe; FilterError for bad values."""
    return Filter(
        source=getattr(args, "source", "all") or "all",
        models=Filter.models_from_csv(getattr(args, "models", None)),
        project=getattr(args, "project", None) or None,
        mode=getattr(args, "mode", None) or None,
        since=parse_date(args.since, "--since") if getattr(args, "since", None) else None,
        until=parse_date(args.until, "--until") if getattr(args, "until", None) else None,
        session=getattr(args, "session", None) or None,
        tz=parse_tz(tz_arg),
    )


def make_book(args: argparse.Namespace) -> PriceBook:
    """Prices with the user's overrides (explicit --prices must exist)."""
    path = args.prices
    if path is not None and not path.exists():
        raise UsageError(f"--prices {path}: no such file")
    return PriceBook.from_toml(path or config_dir() / "prices.toml", cache_dir())


def _progress_printer() -> Any:
    """A stderr progress bar that appears only when the scan takes over a second on a terminal."""
    if not sys.stderr.isatty():
        return None
    start = time.monotonic()
    shown = False

    def show(files: int, total_files: int, done: int, total: int) -> None:
        nonlocal shown
        elapsed = time.monotonic() - start
        if elapsed < 1.0:
            return
        shown = True
        frac = done / total if total else 1.0
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = "█" * int(frac * 30) + "░" * (30 - int(frac * 30))
        sys.stderr.write(f"\rscanning {bar} {files:,}/{total_files:,} files · "
                         f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB · {eta:.0f}s left ")
        if files == total_files:
            sys.stderr.write("\r" + " " * 90 + "\r")
        sys.stderr.flush()

    return show


# --- report ---------------------------------------------------------------------------------------------------


def _table(rows: list[dict[str, Any]], name: str, title: str) -> list[str]:
    header = (title.upper(), "COST", "CALLS", "INPUT", "OUTPUT", "CACHE WRITE", "CACHE READ")
    body = [
        (fmt.fit(str(r[name]), 40), fmt.money(r["cost_usd"], r["unpriced_calls"], r["calls"]), fmt.count(r["calls"]),
         fmt.tokens(r["input_tokens"]), fmt.tokens(r["output_tokens"]),
         fmt.tokens(r["cache_creation_tokens"]), fmt.tokens(r["cache_read_tokens"]))
        for r in rows
    ]
    widths = [max(fmt.cells(c) for c in column) for column in zip(header, *body, strict=True)]  # in cells: names
    return ["  ".join(fmt.pad(c, widths[i], right=i > 0) for i, c in enumerate(line))  # may be CJK
            for line in (header, *body)]


def render_report_table(rep: dict[str, Any], group_by: str) -> str:
    """The human-readable report."""
    t = rep["totals"]
    f = rep["filters"]
    span = f"{f['since'] or '…'} → {f['until'] or '…'}" if (f["since"] or f["until"]) else "all time"
    lines = [
        f"tokentop · {f['source']} sources · {span} · {rep['tz']}",
        f"cost {fmt.money(t['cost_usd'], t['unpriced_calls'], t['calls'])} · "
        f"calls {fmt.count(t['calls'])} ({fmt.calls_split(t['cloud_calls'], t['local_calls'])}) · "
        f"tokens in {fmt.tokens(t['input_tokens'])} out {fmt.tokens(t['output_tokens'])} "
        f"write {fmt.tokens(t['cache_creation_tokens'])} read {fmt.tokens(t['cache_read_tokens'])}",
        "",
    ]
    key = {"day": "by_day", "model": "by_model", "project": "by_project", "session": "sessions",
           "task": "by_task", "machine": "by_machine", "user": "by_user"}[group_by]
    lines += _table(rep[key], group_by, group_by)
    bad = {k: v for k, v in rep["warnings"].items() if v}
    if bad:
        lines += ["", "warnings: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in bad.items())]
    return "\n".join(lines)


def apply_window(args: argparse.Namespace, flt: Filter) -> Filter:
    """``--window`` as dates in the display zone (not together with --since/--until)."""
    from datetime import datetime

    from .core.filters import window_dates

    if not args.window:
        return flt
    if args.since or args.until:
        raise UsageError("--window and --since/--until do not go together")
    since, until = window_dates(args.window, datetime.now(flt.tz).date())
    return flt.with_(since=since, until=until)


def comparison(engine: Engine, flt: Filter) -> dict[str, Any]:
    """The previous window of equal length: its totals and the deltas (absolute and %)."""
    from .core.filters import previous_window

    if flt.since is None or flt.until is None:
        raise UsageError("--compare needs a bounded window (--window other than all, or --since and --until)")
    since, until = previous_window(flt.since, flt.until)
    now = engine.totals(flt)
    prev = engine.totals(flt.with_(since=since, until=until))
    return {
        "previous": {"since": since.isoformat(), "until": until.isoformat()},
        "totals": prev,
        "delta": {k: now[k] - prev[k] for k in now},
        "delta_pct": {k: (now[k] - prev[k]) / prev[k] * 100 if prev[k] else None for k in now},
    }


def cmd_report(args: argparse.Namespace) -> int:
    """`tokentop report`."""
    import gc

    # A run that ends in seconds: the cycle collector would only walk the cube's many (acyclic) containers over
    # and over (about 10 % of a warm start); reference counting frees everything that is dropped.
    gc.disable()
    settings = Settings.load()
    if args.group_by in ("machine", "user") and args.team is None:
        raise UsageError(f"--group-by {args.group_by} needs --team (one machine's own report has one of each)")
    flt = apply_window(args, make_filter(args, args.tz or settings.tz))
    engine = make_engine(args, settings, flt.tz)
    engine.start(workers=args.workers, progress=None if args.json else _progress_printer())
    rep = engine.report(flt, active_window_minutes=settings.active_window_minutes,
                        group_by_task=args.group_by == "task")
    rep["warnings"]["ledger_only_calls"] = engine.ledger_only
    rep["limit_hits"] = engine.limit_hits_json()
    if args.compare:
        rep["compare"] = comparison(engine, flt)
    from .core.report import projection, recent_calls, top_tasks

    with engine.lock:
        rep["projection"] = projection(engine.cube, flt, time.time(), report=rep)
        if args.top_tasks:
            rep["top_tasks"] = top_tasks(engine.cube, flt)
        if args.recent:
            rep["recent"] = recent_calls(engine.cube, flt)
    if args.blocks:
        from .core.blocks import blocks_report

        with engine.lock:
            rep["blocks"] = blocks_report(report_calls(engine, flt), time.time())
    cleanup = cleanup_period_days(engine.sources.claude_dirs)
    if cleanup is not None and cleanup < DEFAULT_CLEANUP_DAYS:
        rep["warnings"]["claude_cleanup_period_days"] = cleanup
    if args.json:
        import msgspec  # several times faster than json.dumps on a report with thousands of sessions

        sys.stdout.write(msgspec.json.encode(rep).decode() + "\n")
    elif args.blocks:
        sys.stdout.write(render_blocks(rep["blocks"], flt.tz) + "\n")
    else:
        sys.stdout.write(render_report_table(rep, args.group_by) + "\n")
        if args.top_tasks:
            sys.stdout.write("\n" + "\n".join(_table(rep["top_tasks"], "task", "top tasks")) + "\n")
        if args.recent:
            sys.stdout.write("\nRECENT CALLS\n" + "\n".join(_recent_line(r) for r in rep["recent"]) + "\n")
        if args.compare:
            c = rep["compare"]
            pct = c["delta_pct"]["cost_usd"]
            sys.stdout.write(
                f"\nprevious {c['previous']['since']} → {c['previous']['until']}: "
                f"cost {fmt.money(c['totals']['cost_usd'])} · calls {fmt.count(c['totals']['calls'])}\n"
                f"change: cost {'+' if c['delta']['cost_usd'] >= 0 else '-'}{fmt.money(abs(c['delta']['cost_usd']))}"
                f"{f' ({pct:+.0f}%)' if pct is not None else ''} · calls {c['delta']['calls']:+,}\n")
    return 0


def _recent_line(r: dict[str, Any]) -> str:
    tokens = r["input_tokens"] + r["output_tokens"] + r["cache_creation_tokens"] + r["cache_read_tokens"]
    cost = fmt.money(r["cost_usd"]) if r["cost_usd"] is not None else "unpriced"
    return (f"{r['time'][:19].replace('T', ' ')}  {r['source']:<11} {fmt.pad(fmt.fit(r['model'], 26), 26)} "
            f"{fmt.pad(fmt.fit(r['project'], 14), 14)} {fmt.tokens(tokens):>7}  {cost:>9}")


def report_calls(engine: Engine, flt: Filter) -> Any:
    """Single calls passing the filter (for blocks)."""
    from .core.report import matching_calls

    return matching_calls(engine.cube, flt)


def render_blocks(b: dict[str, Any], tz: Any) -> str:
    """The 5-hour blocks as a table, the active one with its burn rate and projection."""
    from datetime import datetime

    def when(iso: str) -> str:
        return datetime.fromisoformat(iso).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    lines = ["BLOCK START       CALLS    TOKENS        COST  MODELS"]
    for blk in b["blocks"][-24:]:
        if blk["gap"]:
            lines.append(f"{when(blk['start'])}  (gap)")
            continue
        mark = " ●" if blk["active"] else ""
        lines.append(f"{when(blk['start'])}  {blk['calls']:>5,}  {fmt.tokens(blk['tokens']):>8}  "
                     f"{fmt.money(blk['cost_usd'], blk['unpriced_calls']):>10}  "
                     f"{', '.join(blk['models'])[:40]}{mark}")
    a = b["active"]
    if a:
        pct = f" · {a['percent_of_max']:.0f}% of the largest block" if a.get("percent_of_max") else ""
        lines += ["", f"active block: {fmt.money(a['cost_usd'])} · {fmt.tokens(a['tokens'])} tokens · "
                      f"{fmt.tokens(a['tokens_per_minute'])} tok/min · {fmt.money(a['usd_per_hour'])}/h · "
                      f"{a['minutes_left']:.0f} min left · projected {fmt.money(a['projected_cost_usd'])}{pct}"]
    else:
        lines += ["", "no active block"]
    return "\n".join(lines)


def budget_store(team: str | None = None) -> Any:
    """The budgets file beside the settings, or the team's budgets (``--team``)."""
    from .core.budgets import BudgetStore, TeamBudgetStore

    if team is not None:
        return TeamBudgetStore(team_store(team))
    return BudgetStore(config_dir() / "budgets.json")


def budget_statuses(engine: Engine, tz: Any, team: str | None = None) -> list[dict[str, Any]]:
    """Every budget's status now."""
    from datetime import datetime

    from .core.budgets import status

    budgets = budget_store(team).load()
    today = datetime.now(tz).date()
    with engine.lock:
        models = {c[2] for c in engine.cube.cells}
        return [status(b, engine.cube, Filter(tz=tz), today, models) for b in budgets]


def cmd_budget(args: argparse.Namespace) -> int:
    """`tokentop budget set|rm|show|check`."""
    from .core.budgets import Budget

    store = budget_store(args.team)
    if args.budget_command == "set":
        b = Budget(args.scope, args.period, args.amount, args.alert_at, args.hard_stop)
        store.set(b)
        sys.stdout.write(f"budget {b.scope} {b.period} {fmt.money(b.amount)}"
                         f"{' (hard stop)' if b.hard_stop else ''} saved\n")
        return 0
    if args.budget_command == "rm":
        if not store.remove(args.scope, args.period):
            raise UsageError(f"no {args.period} budget for {args.scope!r}")
        return 0
    settings = Settings.load()
    tz = parse_tz(args.tz or settings.tz)
    engine = make_engine(args, settings, tz)
    engine.start()
    statuses = budget_statuses(engine, tz, args.team)
    over = [s for s in statuses if s["hard_stop"] and s["exceeded"]]
    if args.json:
        sys.stdout.write(json.dumps({"budgets": statuses}) + "\n")
    elif not statuses:
        sys.stdout.write(f"no {'team ' if args.team is not None else ''}budgets (tokentop budget set all daily 20"
                         f"{' --team' if args.team is not None else ''})\n")
    else:
        for s in statuses:
            sys.stdout.write(
                f"{fmt.pad(s['scope'], 20)} {s['period']:<8} {fmt.money(s['spent_usd']):>9} of "
                f"{fmt.money(s['amount']):<9}"
                f" {s['percent']:5.1f}%  {s['level']:<6} projected {fmt.money(s['projected_usd'])}"
                f"{'  HARD STOP EXCEEDED' if s in over else ''}\n")
    if args.budget_command == "check" and over:
        which = ", ".join(f"{s['scope']} {s['period']}" for s in over)
        sys.stderr.write(f"tokentop: over {'team ' if args.team is not None else ''}budget: {which}\n")
        return 1
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    """`tokentop log`: one row appended to the app log; the row is printed as JSON."""
    from .recorder import record

    row = record(args.model, args.input, args.output, cache_read_tokens=args.cache_read,
                 cache_creation_tokens=args.cache_write, cache_write_1h_tokens=args.cache_write_1h,
                 cost_usd=args.cost, session=args.session, mode=args.mode, task=args.task, project=args.project,
                 data_root=args.data_root)
    sys.stdout.write(json.dumps(row) + "\n")
    return 0


def cmd_statusline(args: argparse.Namespace) -> int:
    """`tokentop statusline`: Claude Code pipes its statusline JSON in; we record plan windows, print a line."""
    from datetime import datetime

    from .core.files import write_atomic
    from .core.rate_limits import PLAN_WINDOWS, parse_plan_window, plan_limits_path

    settings = Settings.load()
    raw = sys.stdin.read()
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError:
        data = {}
    now = time.time()
    windows = {}
    limits = data.get("rate_limits") if isinstance(data, dict) else None
    for name in PLAN_WINDOWS:
        w = parse_plan_window(limits.get(name) if isinstance(limits, dict) else None, now)
        if w is not None:
            windows[name] = w
    sources = make_sources(args, settings)
    if windows and sources.data_root is not None:
        write_atomic(plan_limits_path(sources.data_root), json.dumps(windows))
    tz = parse_tz(args.tz or settings.tz)
    engine = make_engine(args, settings, tz)
    engine.start()
    today = datetime.now(tz).date()
    t = engine.totals(Filter(since=today, until=today, tz=tz))
    parts = [f"today {fmt.money(t['cost_usd'], t['unpriced_calls'], t['calls'])}"]
    for name, label in (("five_hour", "5h"), ("seven_day", "7d")):
        if name in windows:
            w = windows[name]
            left = f" ⟳{fmt.duration(w['resets_at'] - now)}" if w["resets_at"] else ""
            parts.append(f"{label} {w['used_percentage']:.0f}%{left}")
    sys.stdout.write("tokentop · " + " · ".join(parts) + "\n")
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    """`tokentop watch --json`: scan, print totals, then print them again after every applied batch."""
    import asyncio
    import signal
    import threading
    from datetime import datetime, timezone

    from .core.live import Batch, follow

    settings = Settings.load()
    flt = make_filter(args, args.tz or settings.tz)
    engine = make_engine(args, settings, flt.tz)
    syncer = make_syncer(args, engine, args.sync_to) if args.sync_to is not None else None
    sync_stop, sync_wake = threading.Event(), threading.Event()

    def emit(lines: int) -> None:
        line: dict[str, Any] = {"applied_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                                "lines": lines, "totals": engine.totals(flt)}
        if engine.ledger_behind:  # new lines wait (a server away) or are counted and not stored yet (a lock)
            line["ledger_behind"] = engine.ledger_notice()
        if syncer is not None:
            st = syncer.status
            line["sync"] = {"state": st.state, "backlog": st.backlog, "pushed": st.pushed, "error": st.error}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await asyncio.to_thread(engine.start)
        if syncer is not None:  # pushes after every applied batch; never blocks reading the files
            threading.Thread(target=syncer.run_forever, args=(sync_stop, sync_wake), daemon=True).start()
        emit(engine.lines_applied)

        behind = False

        def applied(batch: Batch) -> None:
            nonlocal behind
            sync_wake.set()
            changed = engine.ledger_behind != behind
            if changed:  # said once on stderr, and in each line while it lasts
                behind = engine.ledger_behind
                sys.stderr.write(f"tokentop: {engine.ledger_notice() or 'the ledger has every call again'}\n")
            if batch.calls_read or batch.files or changed:
                emit(batch.calls_read)
            if batch.polling and batch.files == 0 and batch.calls_read == 0:
                sys.stderr.write("tokentop: inotify unavailable, polling\n")

        await follow(engine, applied, stop, force_polling=True if args.poll else None)

    try:
        asyncio.run(run())
    finally:
        sync_stop.set()
        sync_wake.set()
    return 0


def cmd_reprice(args: argparse.Namespace) -> int:
    """`tokentop reprice`: stored Claude Code calls priced again (internal rows keep their logged cost)."""
    settings = Settings.load()
    engine = make_engine(args, settings, parse_tz("UTC"))
    if engine.ledger is None:
        raise UsageError("reprice works on the ledger; drop --no-ledger")
    ledger = engine.ledger
    n, before, after = ledger.reprice(engine.price, ledger.priced_with)
    sys.stdout.write(f"repriced {n:,} calls: Claude Code total {fmt.money(before)} → {fmt.money(after)}\n")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`tokentop export`: calls as CSV or JSONL for a date range (catching up with the files first)."""
    settings = Settings.load()
    flt = make_filter(args, args.tz or settings.tz)
    engine = make_engine(args, settings, flt.tz)
    if engine.ledger is None:
        raise UsageError("export reads the ledger; drop --no-ledger")
    engine.start()
    lo, hi = flt.day_bounds()
    if args.output:
        with open(args.output, "w", newline="") as out:
            n = engine.ledger.export(out, args.format, lo, hi)
        sys.stderr.write(f"{n:,} calls written to {args.output}\n")
    else:
        engine.ledger.export(sys.stdout, args.format, lo, hi)
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """`tokentop sync --to URL`: catch the local ledger up with the files, then push what the server lacks."""
    if args.roles:
        from .core.team import ROLES_SQL

        sys.stdout.write(ROLES_SQL)
        return 0
    settings = Settings.load()
    engine = make_engine(args, settings, parse_tz(args.tz or settings.tz))
    engine.start()
    syncer = make_syncer(args, engine, args.to)
    from .core.team import describe_url

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\rsync {done:,}/{total:,} calls")

    n = syncer.run_once(progress)
    if sys.stderr.isatty() and n:
        sys.stderr.write("\n")
    sys.stdout.write(f"synced {n:,} calls as {syncer.machine} to {describe_url(syncer.url)}\n")
    return 0


def cmd_tui(args: argparse.Namespace) -> int:
    """`tokentop`: the full-screen app over the user's own history."""
    settings = Settings.load()
    tz = parse_tz(args.tz or settings.tz)
    engine = make_engine(args, settings, tz)
    syncer = make_syncer(args, engine, args.sync_to) if args.sync_to is not None else None
    # the warm start's child also makes the dashboard's first view (as the app would: `FirstView`)
    engine.first_view_for = (args.range, settings.active_window_minutes, time.time)
    warming = start_early(engine)
    import gc

    from ._codecache import CodeCache

    codes = CodeCache(cache_dir() / CODE_CACHE_FILE)  # (what Textual's import compiles: dataclasses, regexes)
    # Importing Textual makes many objects and little garbage: no collections meanwhile. What is loaded then stays
    # for the app's life: out of the cycle collector's reach, so the collections that starting the app triggers
    # do not walk all of Textual's and our modules (~40 ms before the first frame).
    gc.disable()
    try:  # asyncio takes ssl only if it can (~10 ms to import); the app never opens a TLS connection with it
        with _lean.without("ssl"), codes.installed():
            from .ui.app import run_tui  # Textual's import overlaps the warm start
    finally:
        gc.freeze()
        gc.enable()
    codes.save()  # (the first time, or after an upgrade)

    return run_tui(engine, active_window_minutes=settings.active_window_minutes,
                   budgets=budget_store(args.team).load(), warming=warming, syncer=syncer, date_range=args.range)


#: In the cache dir: the compiled methods of dataclasses and namedtuples, and regular expressions (`CodeCache`).
CODE_CACHE_FILE = "generated-code.marshal"


def start_early(engine: Engine) -> Any:
    """A warm start (from the ledger) begun before the UI is even imported, in a forked process where possible
    (see `Engine.start_in_child`); returns the thread to join, or None for a cold scan, which the UI runs itself
    to show its progress."""
    import threading

    engine.reads_by_time = True  # its 5-hour block
    if getattr(engine, "ledger", None) is None or not engine.ledger.has_calls():
        return None
    if isinstance(engine.ledger, Ledger) and hasattr(os, "fork"):
        return engine.start_in_child()
    t = threading.Thread(target=engine.start, name="tokentop-warm-start", daemon=True)
    t.start()
    return t


def cmd_demo(args: argparse.Namespace) -> int:
    """`tokentop demo`: a generated history in a temp dir with a live feed; the dir is removed on exit."""
    import shutil
    import signal
    import tempfile
    import threading

    from .demo import Demo, start_feed

    tz = parse_tz(args.tz)
    root = Path(tempfile.mkdtemp(prefix="tokentop-demo-"))
    stop = threading.Event()

    def closed(signum: int, _frame: Any) -> None:  # the pane was closed or we were told to stop: leave nothing
        stop.set()
        shutil.rmtree(root, ignore_errors=True)
        os._exit(128 + signum)

    for sig in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, closed)
    try:
        if args.team is not None:  # two machines' histories pushed to the team database, viewed as one team
            from .core.team import TeamStore, team_url
            from .core.team_engine import TeamEngine
            from .demo import TeamDemo

            url = team_url(args.team or None, config_dir() / "team.url")
            team = TeamDemo(root, url, time.time())
            team.push()
            from .ui.app import run_tui

            return run_tui(TeamEngine(TeamStore(url), tz, cache_dir()), on_start=lambda app: team.run(time.time, stop),
                           date_range=args.range)
        demo = Demo(root, time.time())
        demo.write_history()
        sources = Sources(claude_dirs=[demo.claude_dir], data_root=demo.data_root, internal_project="work-buddy")
        engine = Engine(sources, PriceBook(cache_dir=cache_dir()), tz)
        from .ui.app import run_tui

        return run_tui(engine, on_start=lambda app: start_feed(demo, time.time, stop), date_range=args.range)
    finally:
        stop.set()
        shutil.rmtree(root, ignore_errors=True)


#: Commands that print and end: the script leaves without tearing the interpreter down (see `run`).
FAST_EXIT = ("report", "statusline", "budget")
_fast_exit = False


def run() -> None:
    """The ``tokentop`` script: `main`, then exit. After a command that printed its answer, the interpreter's
    teardown (freeing every object a large history's report built: ~40 ms, a seventh of a warm `report`) is
    skipped with ``os._exit`` once stdout and stderr are flushed, as mypy does. Every ledger transaction is
    committed or rolled back by then; SQLite leaves its ``-wal``/``-shm`` files to the next opener, which
    checks them (a connection closed normally would checkpoint and remove them)."""
    code = main()
    if not _fast_exit:
        raise SystemExit(code)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: what was not read is dropped, as before
        pass
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    """Run one command line (``argv``, default: the process's); returns the exit code."""
    global _fast_exit
    args = build_parser().parse_args(argv)
    _fast_exit = args.command in FAST_EXIT
    commands = {None: cmd_tui, "report": cmd_report, "demo": cmd_demo, "watch": cmd_watch, "log": cmd_log,
                "budget": cmd_budget, "statusline": cmd_statusline, "reprice": cmd_reprice, "export": cmd_export,
                "sync": cmd_sync}
    from .core.errors import TeamError

    try:
        if args.command not in commands:
            raise UsageError(f"unknown command {args.command!r}")
        return commands[args.command](args)
    except (UsageError, FilterError, PriceFileError, LedgerError, ValueError) as e:
        sys.stderr.write(f"tokentop: error: {e}\n")
        return 2
    except TeamError as e:  # the server, not the command line: exit 1 (the local ledger has everything)
        sys.stderr.write(f"tokentop: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    run()
