"""Claude Code reader: every counting rule of FORMATS.md §1 on hand-made transcripts."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from tokentop.core.claude_code import default_claude_dirs, discover_files, project_of_cwd

from tests.builders import HAIKU, OPUS, SONNET, cc_line, project_dir, user_line, write_lines


def test_streamed_copies_count_once_with_final_output(claude_dir: Path, report) -> None:
    # One line per content block; early lines are streaming snapshots with tiny output_tokens.
    write_lines(project_dir(claude_dir) / "sess-1.jsonl", [
        cc_line("msg_a", output=2, cr=5000, content=[{"type": "thinking", "thinking": "…"}]),
        cc_line("msg_a", output=3, cr=5000, content=[{"type": "text", "text": "…"}]),
        cc_line("msg_a", output=731, cr=5000, content=[{"type": "tool_use", "id": "t", "name": "Read"}]),
    ])
    t = report()["totals"]
    assert t["calls"] == 1
    assert t["output_tokens"] == 731
    assert t["cache_read_tokens"] == 5000


def test_final_snapshot_wins_even_when_it_comes_first(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "sess-1.jsonl", [cc_line("msg_a", output=900), cc_line("msg_a", output=4)])
    assert report()["totals"]["output_tokens"] == 900


def test_dedupe_is_global_across_files_and_roots(tmp_path: Path, claude_dir: Path, report) -> None:
    other = tmp_path / "other-claude"
    write_lines(project_dir(claude_dir) / "a.jsonl", [cc_line("msg_a", output=10)])
    write_lines(project_dir(claude_dir) / "b.jsonl", [cc_line("msg_a", output=10), cc_line("msg_b", output=5)])
    write_lines(project_dir(other) / "c.jsonl", [cc_line("msg_b", output=50)])
    rep = report("--claude-dir", str(other))
    assert rep["totals"]["calls"] == 2
    assert rep["totals"]["output_tokens"] == 60


def test_btw_replay_with_new_request_id_is_the_same_call(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        cc_line("msg_a", output=40, request_id="req_1"),
        cc_line("msg_a", output=40, request_id="req_2", isSidechain=True),
    ])
    assert report()["totals"]["calls"] == 1


def test_lines_without_message_id_are_never_merged(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line(None, output=7), cc_line(None, output=7)])
    t = report()["totals"]
    assert t["calls"] == 2
    assert t["output_tokens"] == 14


def test_all_three_subagent_layouts_are_counted(claude_dir: Path, report) -> None:
    pdir = project_dir(claude_dir)
    write_lines(pdir / "sess-1.jsonl", [
        cc_line("msg_main", output=1),
        cc_line("msg_inline", output=2, sidechain=True, agentId="a1"),  # <=2.0.23: inline
    ])
    write_lines(pdir / "agent-a2.jsonl", [cc_line("msg_flat", output=4, sidechain=True, agentId="a2")])  # 2.0.24+
    write_lines(pdir / "sess-1" / "subagents" / "agent-a3.jsonl",
                [cc_line("msg_nested", output=8, sidechain=True, agentId="a3")])  # 2.1.x
    write_lines(pdir / "sess-1" / "subagents" / "workflows" / "wf_1" / "agent-a4.jsonl",
                [cc_line("msg_wf", output=16, sidechain=True, agentId="a4")])
    rep = report()
    assert rep["totals"]["calls"] == 5
    assert rep["totals"]["output_tokens"] == 31
    # Subagents fall under their parent session.
    assert [s["session"] for s in rep["sessions"]] == ["sess-1"]


def test_progress_line_repeating_a_subagent_message_adds_nothing(claude_dir: Path, report) -> None:
    inner = json.loads(cc_line("msg_sub", output=30, sidechain=True))
    progress = json.dumps({"type": "progress", "sessionId": "sess-1", "cwd": "/home/dev/src/webshop",
                           "timestamp": "2026-11-20T10:00:01.000Z", "data": {"message": inner}})
    pdir = project_dir(claude_dir)
    write_lines(pdir / "sess-1.jsonl", [progress])
    write_lines(pdir / "sess-1" / "subagents" / "agent-x.jsonl", [cc_line("msg_sub", output=30, sidechain=True)])
    t = report()["totals"]
    assert (t["calls"], t["output_tokens"]) == (1, 30)


@pytest.mark.parametrize("missing", ["sessionId", "timestamp"])
def test_progress_line_alone_still_counts_its_message_with_the_lines_session_and_time(claude_dir: Path, report,
                                                                                      missing: str) -> None:
    inner = json.loads(cc_line("msg_sub", output=30, sidechain=True))  # of 2026-11-20, session sess-1
    del inner[missing]  # what the copy lacks, the line gives
    progress = json.dumps({"type": "progress", "sessionId": "sess-9", "cwd": "/x/proj",
                           "timestamp": "2026-11-21T10:00:01.000Z", "data": {"message": inner}})
    write_lines(project_dir(claude_dir) / "sess-9.jsonl", [progress])
    rep = report()
    assert (rep["totals"]["calls"], rep["totals"]["output_tokens"], rep["warnings"]["unparsable_lines"]) == (1, 30, 0)
    assert rep["sessions"][0]["session"] == ("sess-9" if missing == "sessionId" else "sess-1")
    assert [d["day"] for d in rep["by_day"]] == ["2026-11-21" if missing == "timestamp" else "2026-11-20"]


def test_synthetic_and_api_error_rows_are_not_calls(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        cc_line("67e7-uuid", model="<synthetic>", input=0, output=0, request_id=None),
        cc_line("msg_err", output=0, isApiErrorMessage=True, error="rate_limit", apiErrorStatus=429),
        cc_line("msg_ok", output=0, input=0),  # a real model with all-zero usage is still a call
    ])
    rep = report()
    assert rep["totals"]["calls"] == 1
    assert [m["model"] for m in rep["by_model"]] == [SONNET]


def test_null_speed_field_does_not_drop_the_line(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("msg_a", usage_extra={"speed": None})])
    assert report()["totals"]["calls"] == 1


def test_project_is_last_cwd_component_with_worktrees_collapsed(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir, "/r/shop") / "a.jsonl", [cc_line("m1", cwd="/r/shop")])
    write_lines(project_dir(claude_dir, "/r/shop/.claude/worktrees/feat") / "b.jsonl",
                [cc_line("m2", cwd="/r/shop/.claude/worktrees/feat", session="sess-2")])
    rep = report()
    assert [(p["project"], p["calls"]) for p in rep["by_project"]] == [("shop", 2)]
    assert project_of_cwd("/home/u/my.app/") == "my.app"


def test_hostile_lines_are_skipped_and_counted(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        cc_line("msg_a", output=5),
        '{"type":"assistant","message":{"id":"msg_b","usage":{"output_tokens":',  # truncated mid-line
        "not json at all",
        cc_line("msg_c", output=6).replace('"output_tokens":6', '"output_tokens":"six"'),  # wrong type
        "",  # blank lines are fine
        user_line(),
        '["an array"]',
        cc_line("msg_d", output=7).replace(f'"model":"{SONNET}"', '"model":null'),  # usage of no model
        cc_line("msg_e", output=8).replace('"timestamp":"2026-11-20T10:00:00.000Z",', ''),  # usage of no time
    ])
    rep = report()
    assert rep["totals"]["calls"] == 1
    assert rep["warnings"]["unparsable_lines"] == 6
    assert [d["day"] for d in rep["by_day"]] == ["2026-11-20"]  # nothing counted on 1970-01-01


def test_impossible_token_counts_are_skipped_and_counted_not_summed(claude_dir: Path, report) -> None:
    ok = cc_line("msg_a", output=5)
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        ok,
        cc_line("msg_b", output=6).replace('"output_tokens":6', f'"output_tokens":{2**70}'),  # past any counter
        cc_line("msg_c", output=6).replace('"output_tokens":6', '"output_tokens":-6'),
        cc_line("msg_d", output=6).replace('"output_tokens":6', '"output_tokens":1e300'),
        cc_line("msg_e", output=6).replace('"output_tokens":6', '"output_tokens":1000000001'),
        cc_line("msg_f", output=1_000_000_000),  # a billion: the most one call may report
    ])
    rep = report()  # used to end with OverflowError while a scan job handed its calls back
    assert rep["totals"]["calls"] == 2 and rep["totals"]["output_tokens"] == 1_000_000_005
    assert rep["warnings"]["unparsable_lines"] == 4


def test_half_written_last_line_is_not_a_line_yet(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("msg_a", output=5), cc_line("msg_b", output=7)],
                final_newline=False)
    rep = report()
    assert rep["totals"]["calls"] == 1
    assert rep["warnings"]["unparsable_lines"] == 0


def test_invalid_utf8_inside_a_string_is_repaired_and_counted(claude_dir: Path, report) -> None:
    # A tool output cut mid-character (skipped field) and a cwd with a broken byte (a decoded field).
    in_text = cc_line("msg_a", output=5, content=[{"type": "text", "text": "cut: XX"}]).encode()
    in_cwd = cc_line("msg_b", output=6, cwd="/src/shopXX").encode()
    path = project_dir(claude_dir) / "s.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(in_text.replace(b"XX", b"\xe2\x82") + b"\n" + in_cwd.replace(b"XX", b"\xff") + b"\n")
    rep = report()
    assert rep["totals"]["calls"] == 2
    assert rep["totals"]["output_tokens"] == 11
    assert rep["warnings"]["invalid_utf8_lines"] == 1
    assert rep["warnings"]["unparsable_lines"] == 0
    assert {p["project"] for p in rep["by_project"]} == {"webshop", "shop\ufffd"}


def test_crlf_and_bom_are_fine(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("msg_a", output=5), cc_line("msg_b", output=6)],
                newline="\r\n", bom=True)
    rep = report()
    assert rep["totals"]["calls"] == 2
    assert rep["warnings"]["unparsable_lines"] == 0


def test_big_user_lines_are_skipped_but_still_checked(claude_dir: Path, report) -> None:
    big = user_line("x" * 5000)
    write_lines(project_dir(claude_dir) / "s.jsonl", [big, big[:-40], cc_line("msg_a")])
    rep = report()
    assert rep["totals"]["calls"] == 1
    assert rep["warnings"]["unparsable_lines"] == 1


def test_session_comes_from_session_id_and_time_from_final_copy(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "file-name.jsonl", [
        cc_line("msg_a", output=1, ts="2026-11-19T23:59:59.000Z", session="abc"),
        cc_line("msg_a", output=90, ts="2026-11-20T00:00:01.5+00:00", session="abc"),
    ])
    rep = report()
    assert [d["day"] for d in rep["by_day"]] == ["2026-11-20"]
    assert rep["sessions"][0]["session"] == "abc"


def test_claude_config_dir_list_and_defaults(tmp_path: Path) -> None:
    assert default_claude_dirs({"CLAUDE_CONFIG_DIR": "/a, /b", "HOME": "/h"}) == [Path("/a"), Path("/b")]
    assert default_claude_dirs({"HOME": "/h"}) == [Path("/h/.claude"), Path("/h/.config/claude")]


def test_discovery_reads_only_nonempty_jsonl(claude_dir: Path) -> None:
    pdir = project_dir(claude_dir)
    write_lines(pdir / "a.jsonl", [cc_line("m")])
    (pdir / "empty.jsonl").write_bytes(b"")
    (pdir / "notes.txt").write_text("x")
    (pdir / "a" / "subagents").mkdir(parents=True)
    write_lines(pdir / "a" / "subagents" / "agent-1.jsonl", [cc_line("n")])
    found = sorted(Path(p).name for p, _ in discover_files([claude_dir / "projects"]))
    assert found == ["a.jsonl", "agent-1.jsonl"]


def _age(path: Path, seconds: float) -> None:
    """Set a folder's mtime into the past (as if it last changed ``seconds`` ago)."""
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_discovery_with_listings_finds_the_same_files_and_every_change(claude_dir: Path) -> None:
    pdir = project_dir(claude_dir)
    write_lines(pdir / "a.jsonl", [cc_line("m")])
    (pdir / "empty.jsonl").write_bytes(b"")
    write_lines(pdir / "a" / "subagents" / "agent-1.jsonl", [cc_line("n")])
    roots = [claude_dir / "projects"]
    for d in (pdir / "a" / "subagents", pdir / "a", pdir, claude_dir / "projects"):
        _age(d, 60)
    listings: dict = {}
    assert discover_files(roots, None, listings) == discover_files(roots)
    assert sorted(listings[str(pdir)].files) == [
        "a.jsonl", "empty.jsonl"]  # the empty file is listed too: it may grow
    # Unchanged folders come from the listings: their files are still stat'ed, so growth shows.
    write_lines(pdir / "empty.jsonl", [cc_line("e")])
    _age(pdir, 60)  # writing into an existing file leaves the folder's mtime alone; keep it old for sure
    stats: dict = {}
    found = discover_files(roots, stats, listings)
    assert found == discover_files(roots) and {Path(p).name for p, _ in found} >= {"empty.jsonl"}
    assert set(stats) == {p for p, _ in found}
    # A new file changes its folder's mtime: that folder is listed again.
    write_lines(pdir / "a" / "subagents" / "agent-2.jsonl", [cc_line("o")])
    found = discover_files(roots, None, listings)
    assert sorted(Path(p).name for p, _ in found) == ["a.jsonl", "agent-1.jsonl", "agent-2.jsonl", "empty.jsonl"]
    # A deleted folder drops out of the listings.
    for f in (pdir / "a" / "subagents").iterdir():
        f.unlink()
    (pdir / "a" / "subagents").rmdir()
    found = discover_files(roots, None, listings)
    assert sorted(Path(p).name for p, _ in found) == ["a.jsonl", "empty.jsonl"]
    assert str(pdir / "a" / "subagents") not in listings


def test_a_folder_that_just_changed_is_listed_again_next_time(claude_dir: Path) -> None:
    pdir = project_dir(claude_dir)
    write_lines(pdir / "a.jsonl", [cc_line("m")])
    roots = [claude_dir / "projects"]
    listings: dict = {}
    discover_files(roots, None, listings)
    # Changed within the mtime granularity window: not trusted, so a file created in the same tick (the
    # folder's mtime then looks unchanged) is still found.
    assert str(pdir) not in listings
    mtime = pdir.stat().st_mtime_ns
    write_lines(pdir / "b.jsonl", [cc_line("n")])
    os.utime(pdir, ns=(mtime, mtime))
    assert sorted(Path(p).name for p, _ in discover_files(roots, None, listings)) == ["a.jsonl", "b.jsonl"]


def test_models_are_reported_as_logged(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [cc_line("m1", model=OPUS), cc_line("m2", model=HAIKU)])
    assert sorted(m["model"] for m in report()["by_model"]) == [HAIKU, OPUS]


def test_limit_hit_rows_are_read_not_counted(claude_dir: Path, report) -> None:
    write_lines(project_dir(claude_dir) / "s.jsonl", [
        json.dumps({"type": "assistant", "sessionId": "s", "timestamp": "2026-11-20T10:00:00.000Z",
                    "message": {"id": "u-1", "model": "<synthetic>", "content": [
                        {"type": "text", "text": "You've hit your session limit · resets 9:10pm"}]},
                    "quotaLimits": {"status": "rejected", "resetsAt": 1788894600, "rateLimitType": "five_hour"},
                    "error": "rate_limit", "isApiErrorMessage": True, "apiErrorStatus": 429}),
        json.dumps({"type": "assistant", "sessionId": "s", "timestamp": "2026-11-19T10:00:00.000Z",
                    "message": {"id": "u-2", "model": "<synthetic>", "content": [
                        {"type": "text", "text": "Claude AI usage limit reached|1788800000"}]}}),
        cc_line("m1"),
    ])
    rep = report()
    assert rep["totals"]["calls"] == 1
    hits = {h["window"]: h for h in rep["limit_hits"]}
    assert hits["five_hour"]["resets_at"] == 1788894600 and hits["five_hour"]["status"] == "rejected"
    assert hits["unknown"]["resets_at"] == 1788800000
    assert report()["limit_hits"] == rep["limit_hits"]  # kept by the ledger across a warm start
