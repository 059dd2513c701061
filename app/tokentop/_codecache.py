"""What Python compiles at every start of the TUI from the same text, compiled once per Python and kept.

Importing Textual and the TUI compiles, each time the same: ~50 dataclasses, whose ``__init__``, ``__repr__``,
``__eq__``… ``@dataclass`` writes as source text and ``exec``s; ~60 namedtuples, whose ``__new__`` ``namedtuple``
``eval``s; and ~70 regular expressions (``re`` parses each and makes its program in Python). 60-70 ms of the first
frame here. While `CodeCache.installed` is in effect, these go through the cache: ``dataclasses``' and
``collections``' module-level ``exec`` and ``eval`` (which Python looks up before the builtins), and
``re._compiler.compile``. A text seen before runs from what it compiled to, as kept in a file (``marshal``,
loaded in ~1 ms): a code object, or the arguments ``re`` gave ``_sre.compile``, recorded as it gave them. A new
text is compiled as usual and kept. The cache is keyed by the text itself (and a pattern's flags), and tied to the
Python build (``sys.version``): what runs is what the text compiles to. A missing or damaged file is an empty
cache; a failure to write it is ignored.
"""

from __future__ import annotations

import builtins
import contextlib
import marshal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .core.files import write_atomic


class _Recorder:
    """``re._compiler``'s ``_sre`` while installed: notes the arguments of the last ``compile``."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.args: tuple[Any, ...] | None = None

    def compile(self, *args: Any) -> Any:
        self.args = args
        return self.real.compile(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class CodeCache:
    """Code objects by (mode, source text), and ``_sre.compile``'s arguments by ("re", pattern, flags), read from
    and written to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.codes: dict[tuple[Any, ...], Any] = {}
        self.used: set[tuple[Any, ...]] = set()
        self.compiled = 0  # texts compiled in this run (not found in the file)
        self._compile: Any = None  # re._compiler.compile, while installed
        self._recorder: _Recorder | None = None
        try:
            version, codes = marshal.loads(path.read_bytes())
            if version == sys.version and isinstance(codes, dict):
                self.codes = codes
        except Exception:  # noqa: BLE001 - none yet, damaged, or another Python's: compile as usual
            pass

    def code(self, source: str, mode: str) -> Any:
        """The code object of ``source`` (``exec`` or ``eval`` mode), compiled as ``exec``/``eval`` of a string
        in a module without ``from __future__`` imports would compile it."""
        key = (mode, source)
        code = self.codes.get(key)
        if code is None:
            code = self.codes[key] = compile(source, "<string>", mode, dont_inherit=True)
            self.compiled += 1
        self.used.add(key)
        return code

    def _exec(self, source: Any, globals: Any = None, locals: Any = None, /) -> Any:  # noqa: A002
        return builtins.exec(self.code(source, "exec") if isinstance(source, str) else source, globals, locals)

    def _eval(self, source: Any, globals: Any = None, locals: Any = None, /) -> Any:  # noqa: A002
        return builtins.eval(self.code(source, "eval") if isinstance(source, str) else source, globals, locals)

    def _re_compile(self, pattern: Any, flags: int = 0) -> Any:
        """``re._compiler.compile`` through the cache (a pattern's text and flags; a parsed pattern as usual)."""
        recorder = self._recorder
        if not isinstance(pattern, str | bytes) or recorder is None:
            return self._compile(pattern, flags)
        key = ("re", pattern, int(flags))
        args = self.codes.get(key)
        if args is not None:
            self.used.add(key)
            return recorder.real.compile(*args)
        recorder.args = None
        compiled = self._compile(pattern, flags)
        args = recorder.args
        if args is not None and args[0] is pattern:  # (else another thread's came meanwhile: not kept)
            # (as plain ints and a plain dict: re's opcodes are an int subclass, which marshal does not take)
            pattern_, final_flags, code, groups, groupindex, indexgroup = args
            self.codes[key] = (pattern_, int(final_flags), [int(op) for op in code], int(groups), dict(groupindex),
                               tuple(indexgroup))
            self.compiled += 1
            self.used.add(key)
        return compiled

    @contextlib.contextmanager
    def installed(self) -> Iterator[CodeCache]:
        """Dataclasses, namedtuples and regular expressions made in the block compile through the cache;
        afterwards, as before."""
        import collections
        import dataclasses
        import re

        hooks = ((dataclasses, "exec", self._exec), (collections, "eval", self._eval))
        for module, name, hook in hooks:
            setattr(module, name, hook)
        compiler = getattr(re, "_compiler", None)  # (Python 3.11+)
        if compiler is not None and hasattr(compiler, "_sre") and hasattr(compiler, "compile"):
            self._compile, self._recorder = compiler.compile, _Recorder(compiler._sre)
            compiler._sre, compiler.compile = self._recorder, self._re_compile
        try:
            yield self
        finally:
            for module, name, hook in hooks:
                if vars(module).get(name) == hook:
                    delattr(module, name)
            if self._recorder is not None:
                compiler._sre, compiler.compile = self._recorder.real, self._compile
                self._recorder = None

    def save(self) -> bool:
        """Write the file when this run compiled something it lacked, with what this run used (what an older
        Textual compiled is left out: the file never grows); returns whether it wrote."""
        if not self.compiled:
            return False
        codes = {key: self.codes[key] for key in self.used}
        try:  # (only this user may write what is run from it, as with the other caches)
            write_atomic(self.path, marshal.dumps((sys.version, codes)), mode=0o600)
        except Exception:  # noqa: BLE001 - read-only, full, or something unexpected to marshal: compiled again
            return False
        self.compiled = 0
        return True
