"""The cache of dataclasses' and namedtuples' generated methods: the same classes, compiled once."""

from __future__ import annotations

import collections
import dataclasses
import marshal
import re
from pathlib import Path
from typing import Any

import pytest
from tokentop._codecache import CodeCache


def define() -> tuple[Any, Any]:
    """A frozen dataclass with a default factory and a namedtuple with a default, defined anew each call."""

    @dataclasses.dataclass(frozen=True)
    class Point:
        x: int
        y: int = 2
        tags: tuple[str, ...] = dataclasses.field(default_factory=tuple)

        def norm(self) -> int:
            return abs(self.x) + abs(self.y)

    Pair = collections.namedtuple("Pair", "left right", defaults=[0])
    return Point, Pair


#: Patterns as Textual's and Rich's modules compile them: named groups, flags inline and given, verbose, bytes.
PATTERNS: list[tuple[Any, int]] = [
    (r"(?P<key>[a-z_]+)=(?P<value>\d+(?:\.\d+)?)", 0),
    (r"^\s*#.*$", re.MULTILINE),
    (r"(?i)claude-(opus|sonnet|haiku)-\d", 0),
    (r"""
        \[ (?P<tag>[^\]]*) \]   # a tag
        (?P<rest>.*)
     """, re.VERBOSE | re.DOTALL),
    (rb"\x1b\[(\d+;)*\d*m", 0),
]


def compile_all() -> list[Any]:
    re.purge()  # (else re's own cache answers)
    return [re.compile(pattern, flags) for pattern, flags in PATTERNS]


def check_patterns(compiled: list[Any]) -> None:
    expected = compile_all()  # outside any cache
    assert compiled == expected
    for got, want in zip(compiled, expected, strict=True):
        assert (got.pattern, got.flags, got.groups, dict(got.groupindex)) == \
            (want.pattern, want.flags, want.groups, dict(want.groupindex))
    m = compiled[0].search("x cost=12.5 y")
    assert m is not None and m.group("value") == "12.5" and m.span() == (2, 11)
    assert compiled[2].match("CLAUDE-Sonnet-4") and compiled[3].match("[a]b\nc").group("rest") == "b\nc"
    assert compiled[4].sub(b"", b"\x1b[1;31mred\x1b[0m") == b"red"


def check(point: Any, pair: Any) -> None:
    p = point(3)
    assert (p.x, p.y, p.tags, p.norm()) == (3, 2, (), 5)
    assert p == point(3, 2) and p != point(4) and hash(p) == hash(point(3, 2))
    assert repr(p).endswith("Point(x=3, y=2, tags=())")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.x = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        point()  # x is required
    assert pair(1) == (1, 0) and pair(1, 2).right == 2 and pair._fields == ("left", "right")


def test_generated_methods_compile_once_and_come_from_the_file_next_time(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "generated-code.marshal"
    first = CodeCache(path)
    with first.installed():
        check(*define())
        patterns = compile_all()
    check_patterns(patterns)
    assert first.compiled >= 5 + len(PATTERNS)  # __init__, __repr__, __eq__, …, the tuple's __new__; patterns
    assert "exec" not in vars(dataclasses) and "eval" not in vars(collections)  # as before, after the block
    assert first.save() and path.exists() and not first.save()  # nothing new: not written again

    again = CodeCache(path)
    with again.installed():
        check(*define())
        patterns = compile_all()
    check_patterns(patterns)
    assert again.compiled == 0 and again.used == first.used
    assert re._compiler.compile.__module__ == "re._compiler"  # as before, after the block

    outside = CodeCache(path)  # classes defined outside the block do not touch the cache
    check(*define())
    check_patterns(compile_all())
    assert outside.used == set()

    # what an older version compiled and this one no longer does is dropped when the file is next written
    stale = CodeCache(path)
    stale.codes[("exec", "def old(): pass")] = compile("def old(): pass", "<string>", "exec")
    with stale.installed():
        check(*define())
        dataclasses.make_dataclass("New", ["a"])  # something new, so the file is written
    assert stale.compiled >= 1 and stale.save()
    assert CodeCache(path).codes.keys() == stale.used and ("exec", "def old(): pass") not in stale.used


@pytest.mark.parametrize("content", [b"", b"\x00not marshal", marshal.dumps(("2.7.18 (another Python)", {}))])
def test_a_missing_damaged_or_foreign_cache_compiles_as_usual_and_is_rewritten(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "generated-code.marshal"
    path.write_bytes(content)
    cache = CodeCache(path)
    assert cache.codes == {}
    with cache.installed():
        check(*define())
        check_patterns(compile_all())
    assert cache.compiled >= 5 + len(PATTERNS) and cache.save()
    assert CodeCache(path).codes.keys() == cache.codes.keys()
