"""The cache of dataclasses' and namedtuples' generated methods: the same classes, compiled once."""

from __future__ import annotations

import collections
import dataclasses
import marshal
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
    assert first.compiled >= 5  # __init__, __repr__, __eq__, __hash__, __setattr__, …, the tuple's __new__
    assert "exec" not in vars(dataclasses) and "eval" not in vars(collections)  # as before, after the block
    assert first.save() and path.exists() and not first.save()  # nothing new: not written again

    again = CodeCache(path)
    with again.installed():
        check(*define())
    assert again.compiled == 0 and again.used == first.used

    outside = CodeCache(path)  # classes defined outside the block do not touch the cache
    check(*define())
    assert outside.used == set()


@pytest.mark.parametrize("content", [b"", b"\x00not marshal", marshal.dumps(("2.7.18 (another Python)", {}))])
def test_a_missing_damaged_or_foreign_cache_compiles_as_usual_and_is_rewritten(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "generated-code.marshal"
    path.write_bytes(content)
    cache = CodeCache(path)
    assert cache.codes == {}
    with cache.installed():
        check(*define())
    assert cache.compiled >= 5 and cache.save()
    assert CodeCache(path).codes.keys() == cache.codes.keys()
