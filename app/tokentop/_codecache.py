"""The methods dataclasses and namedtuples generate, compiled once per Python and kept between runs.

``@dataclass`` writes ``__init__``, ``__repr__``, ``__eq__``… of each class as source text and compiles it
(``exec``); ``namedtuple`` does the same for ``__new__`` (``eval``). Importing Textual and the TUI defines ~50
dataclasses and ~60 namedtuples: ~240 compilations, 30-40 ms of the first frame here, the same text every run.
While `CodeCache.installed` is in effect, the two modules compile through this cache (their module-level ``exec``
and ``eval``, which Python looks up before the builtins): a text seen before is run from its code object as kept
in a file (``marshal``, loaded in ~1 ms); a new one is compiled as usual and kept. What runs is exactly what the
text compiles to: the cache is keyed by the text itself, and tied to the Python build (``sys.version``). A missing
or damaged file is an empty cache; a failure to write it is ignored.
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

#: The modules whose ``exec``/``eval`` of generated source go through the cache.
HOOKED = (("dataclasses", "exec"), ("collections", "eval"))
#: A file with more entries than this is written anew with only those of the last run (old Textual versions').
MAX_ENTRIES = 4000


class CodeCache:
    """Code objects by (mode, source text), read from and written to ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.codes: dict[tuple[str, str], Any] = {}
        self.used: set[tuple[str, str]] = set()
        self.compiled = 0  # texts compiled in this run (not found in the file)
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

    @contextlib.contextmanager
    def installed(self) -> Iterator[CodeCache]:
        """Dataclasses and namedtuples defined in the block compile through the cache; afterwards, as before."""
        import collections
        import dataclasses

        modules = {"dataclasses": dataclasses, "collections": collections}
        hooks = {"exec": self._exec, "eval": self._eval}
        for module, name in HOOKED:
            setattr(modules[module], name, hooks[name])
        try:
            yield self
        finally:
            for module, name in HOOKED:
                if modules[module].__dict__.get(name) == hooks[name]:
                    delattr(modules[module], name)

    def save(self) -> bool:
        """Write the file when this run compiled something it lacked; returns whether it wrote."""
        if not self.compiled:
            return False
        codes = self.codes if len(self.codes) <= MAX_ENTRIES else {k: self.codes[k] for k in self.used}
        try:  # (only this user may write what is run from it, as with the other caches)
            write_atomic(self.path, marshal.dumps((sys.version, codes)), mode=0o600)
        except OSError:
            return False
        self.compiled = 0
        return True
