"""Compare `tokentop report --json` with a generated corpus's truth.json: tokens exact, cost within 1e-6 relative."""

from __future__ import annotations

import json
import sys
from typing import Any

FIELDS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens", "calls")


def compare(report: dict[str, Any], truth: dict[str, Any]) -> list[str]:
    """Every mismatch as a line; empty when the report equals the truth."""
    errors: list[str] = []

    def check(where: str, got: dict[str, Any] | None, want: dict[str, Any]) -> None:
        if got is None:
            errors.append(f"{where}: missing")
            return
        for f in FIELDS:
            if got[f] != want[f]:
                errors.append(f"{where}.{f}: got {got[f]} want {want[f]}")
        gc, wc = got["cost_usd"], want["cost_usd"]
        if abs(gc - wc) > 1e-6 * max(1.0, abs(wc)):
            errors.append(f"{where}.cost_usd: got {gc} want {wc}")

    check("totals", report["totals"], truth["totals"])
    for group, name in (("by_day", "day"), ("by_model", "model"), ("by_project", "project"),
                        ("by_source", "source")):
        rows = {r[name]: r for r in report[group]}
        for key, want in truth[group].items():
            check(f"{group}[{key}]", rows.get(key), want)
        extra = set(rows) - set(truth[group])
        if extra:
            errors.append(f"{group}: unexpected rows {sorted(extra)}")
    ambiguous = set(truth.get("ambiguous_sessions", []))
    sessions = {r["session"]: r for r in report["sessions"]}
    for key, want in truth["by_session"].items():
        if key not in ambiguous:
            check(f"sessions[{key}]", sessions.get(key), want)
    return errors


def main() -> int:
    report = json.load(open(sys.argv[1]))
    truth = json.load(open(sys.argv[2]))
    errors = compare(report, truth)
    for e in errors[:30]:
        print(e)
    print("truth check:", "OK" if not errors else f"{len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
