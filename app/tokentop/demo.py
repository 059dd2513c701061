"""`tokentop demo`: a realistic history of both sources in a temp dir, and a feed that keeps appending calls."""

from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .core.files import write_atomic

PROJECTS = ("webshop", "infra-tools", "docs-site", "payments", "ml-pipeline")
MODELS = (("claude-sonnet-4-5-20250929", 55), ("claude-opus-4-5-20251101", 20), ("claude-haiku-4-5-20251001", 25))
TOOLS = ("Read", "Edit", "Bash", "Grep", "Write")


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


class Demo:
    """Writes the demo history under ``root`` and appends new calls on demand."""

    def __init__(self, root: Path, now: float, seed: int = 7) -> None:
        self.root = Path(root)
        self.now = datetime.fromtimestamp(now, timezone.utc)
        self.rng = random.Random(seed)
        self.claude_dir = self.root / "claude"
        self.data_root = self.root / "data"
        self.live_files: list[tuple[Path, str, str]] = []  # (file, session, cwd) of sessions still going
        self.n = 0

    def _assistant_lines(self, t: datetime, session: str, cwd: str, model: str, ctx: int) -> list[str]:
        rng = self.rng
        self.n += 1
        msg_id = f"msg_demo{self.n:06d}{rng.getrandbits(32):08x}"
        write = rng.randint(0, 3000)
        one_hour = write if rng.random() < 0.3 else 0
        usage = {"input_tokens": rng.randint(1, 12), "cache_creation_input_tokens": write,
                 "cache_read_input_tokens": ctx,
                 "cache_creation": {"ephemeral_5m_input_tokens": write - one_hour,
                                    "ephemeral_1h_input_tokens": one_hour},
                 "output_tokens": rng.randint(40, 1800), "service_tier": "standard"}
        blocks = [{"type": "text", "text": "Working on it."}]
        if rng.random() < 0.6:
            blocks.append({"type": "tool_use", "id": f"toolu_{uuid.UUID(int=rng.getrandbits(128)).hex[:20]}",
                           "name": rng.choice(TOOLS), "input": {}})
        lines = []
        for i, block in enumerate(blocks):
            u = dict(usage)
            if i < len(blocks) - 1:
                u["output_tokens"] = rng.randint(1, 5)  # a streamed snapshot: the final line has the real count
            lines.append(json.dumps({
                "parentUuid": None, "isSidechain": False, "userType": "external", "cwd": cwd, "sessionId": session,
                "version": "2.1.3", "gitBranch": "main", "type": "assistant",
                "uuid": str(uuid.UUID(int=rng.getrandbits(128))), "timestamp": _iso(t + timedelta(milliseconds=i)),
                "requestId": f"req_demo{self.n:06d}",
                "message": {"id": msg_id, "type": "message", "role": "assistant", "model": model,
                            "content": [block], "usage": u}}, separators=(",", ":")))
        return lines

    def write_history(self, days: int = 21, sessions: int = 36) -> None:
        """Claude Code transcripts, internal logs and rate limits over the last ``days`` days."""
        rng = self.rng
        names, weights = zip(*MODELS, strict=True)
        for s in range(sessions):
            project = PROJECTS[s % len(PROJECTS)]
            cwd = f"/home/you/src/{project}"
            session = str(uuid.UUID(int=rng.getrandbits(128)))
            recent = s >= sessions - 3  # the last three are still active
            t = self.now - (timedelta(minutes=rng.uniform(20, 50)) if recent
                            else timedelta(days=rng.uniform(0.2, days)))
            model = rng.choices(names, weights)[0]
            ctx = rng.randint(8000, 30000)
            lines = []
            for _ in range(rng.randint(8, 45)):
                t += timedelta(seconds=rng.uniform(5, 70))
                if t > self.now:  # active sessions run up to now, never into the future
                    break
                ctx = min(ctx + rng.randint(300, 4000), 180_000)
                lines += self._assistant_lines(t, session, cwd, model if rng.random() < 0.85 else
                                               rng.choices(names, weights)[0], ctx)
            path = self.claude_dir / "projects" / cwd.replace("/", "-") / f"{session}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n")
            if recent:
                self.live_files.append((path, session, cwd))
        for i in range(3):
            sess = f"{(self.now - timedelta(days=i * 5)).strftime('%Y%m%d')}-{rng.getrandbits(32):08x}"
            rows = []
            t = self.now - timedelta(days=i * 5 + rng.uniform(0.1, 2))
            for _ in range(rng.randint(20, 60)):
                t += timedelta(minutes=rng.uniform(1, 30))
                if t > self.now:
                    break
                rows.append(self._internal_row(t))
            d = self.data_root / "agents" / sess
            d.mkdir(parents=True, exist_ok=True)
            (d / "llm_costs.jsonl").write_text("".join(rows))
        self.write_rate_limits()

    def _internal_row(self, t: datetime) -> str:
        rng = self.rng
        local = rng.random() < 0.3
        model = "qwen2.5-7b-instruct" if local else rng.choice(["claude-haiku-4-5", "claude-sonnet-4-5"])
        inp, out = rng.randint(500, 12000), rng.randint(50, 1500)
        rates = {"claude-haiku-4-5": (1, 5), "claude-sonnet-4-5": (3, 15)}.get(model, (0, 0))
        cost = 0.0 if local else round((inp * rates[0] + out * rates[1]) / 1e6, 6)
        return json.dumps({
            "timestamp": t.isoformat(), "model": model, "task_id": rng.choice(["summarize:day", "classify:email"]),
            "input_tokens": inp, "output_tokens": out, "cache_read_tokens": 0, "cache_creation_tokens": 0,
            "estimated_cost_usd": cost, "cached": False, "execution_mode": "local" if local else "cloud",
            "priced_with": "v2", "caller": ["demo"], "backend": "lmstudio_local" if local else "anthropic_default",
        }) + "\n"

    def write_rate_limits(self) -> None:
        """Latest observations for two models (atomic replace, as the recorder does)."""
        rng = self.rng
        at = self.now
        data = {}
        for model in ("claude-sonnet-4-5", "claude-haiku-4-5"):
            data[model] = {
                "observed_at": at.isoformat(timespec="seconds"),
                "requests": {"limit": 50, "remaining": rng.randint(5, 50),
                             "reset": (at + timedelta(seconds=40)).isoformat(timespec="seconds")},
                "input_tokens": {"limit": 50000, "remaining": rng.randint(2000, 50000),
                                 "reset": (at + timedelta(seconds=30)).isoformat(timespec="seconds")},
                "output_tokens": {"limit": 8000, "remaining": rng.randint(500, 8000),
                                  "reset": (at + timedelta(seconds=20)).isoformat(timespec="seconds")},
                "tokens_combined": {"limit": None, "remaining": None, "reset": None},
            }
        write_atomic(self.data_root / "runtime" / "rate_limits.json", json.dumps(data, indent=2))
        # What `tokentop statusline` records from Claude Code's statusline JSON (measured plan windows).
        t = at.timestamp()
        plan = {"five_hour": {"used_percentage": rng.randint(20, 70), "resets_at": t + 2 * 3600 + 600,
                              "observed_at": t},
                "seven_day": {"used_percentage": rng.randint(5, 40), "resets_at": t + 3 * 86400, "observed_at": t}}
        write_atomic(self.data_root / "runtime" / "plan_limits.json", json.dumps(plan))

    def append_one(self, now: float) -> None:
        """One new call in an active session (sometimes an internal row, sometimes new rate limits)."""
        self.now = datetime.fromtimestamp(now, timezone.utc)
        rng = self.rng
        if self.live_files and rng.random() < 0.8:
            path, session, cwd = rng.choice(self.live_files)
            names, weights = zip(*MODELS, strict=True)
            lines = self._assistant_lines(self.now, session, cwd, rng.choices(names, weights)[0],
                                          rng.randint(20000, 150000))
            with open(path, "a") as f:
                f.write("\n".join(lines) + "\n")
        else:
            logs = sorted((self.data_root / "agents").glob("*/llm_costs.jsonl"))
            if logs:
                with open(logs[-1], "a") as f:
                    f.write(self._internal_row(self.now))
        if rng.random() < 0.3:
            self.write_rate_limits()


def start_feed(demo: Demo, clock, stop: threading.Event, interval: float = 1.0) -> threading.Thread:  # type: ignore[no-untyped-def]
    """Append a call every ``interval`` seconds until ``stop`` is set."""

    def run() -> None:
        while not stop.wait(interval * demo.rng.uniform(0.5, 1.5)):
            demo.append_one(clock())

    t = threading.Thread(target=run, name="tokentop-demo-feed", daemon=True)
    t.start()
    return t


class TeamDemo:
    """Two machines' demo histories, each with its own ledger, pushed to one team database as they grow."""

    MACHINES = ("laptop", "ci-runner")

    def __init__(self, root: Path, url: str, now: float) -> None:
        from .core.engine import Engine, Sources
        from .core.ledger import Ledger
        from .core.pricing import PriceBook
        from .core.team import Syncer

        self.machines = []
        for i, name in enumerate(self.MACHINES):
            demo = Demo(Path(root) / name, now, seed=7 + 4 * i)
            demo.write_history(sessions=18)
            sources = Sources(claude_dirs=[demo.claude_dir], data_root=demo.data_root,
                              internal_project="work-buddy")
            ledger = Ledger(Path(root) / name / "ledger.sqlite", internal_project="work-buddy")
            engine = Engine(sources, PriceBook(), ledger=ledger)
            engine.start(workers=1)
            self.machines.append((demo, engine, Syncer(ledger.path, url, machine=name,
                                                       internal_project="work-buddy")))

    def push(self) -> None:
        """Read what each machine appended and push it (a failed push is retried on the next step)."""
        from .core.team import TeamError

        for _demo, engine, syncer in self.machines:
            engine.update()
            try:
                syncer.run_once()
            except TeamError:
                pass

    def step(self, now: float) -> None:
        """One new call on a random machine, then push."""
        demo = self.machines[self.machines[0][0].rng.randrange(len(self.machines))][0]
        demo.append_one(now)
        self.push()

    def run(self, clock, stop: threading.Event, interval: float = 1.0) -> threading.Thread:  # type: ignore[no-untyped-def]
        """Feed and push until ``stop``."""

        def loop() -> None:
            while not stop.wait(interval):
                self.step(clock())

        t = threading.Thread(target=loop, name="tokentop-team-demo", daemon=True)
        t.start()
        return t
