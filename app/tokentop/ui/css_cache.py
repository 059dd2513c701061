"""Textual's parsed stylesheets kept between runs, so a start does not parse its CSS again.

Textual parses every CSS source (our ``tokentop.tcss``, each widget's ``DEFAULT_CSS``) on each start: ~10 kB,
15-20 ms of the first frame on this machine, the largest single part of mounting the main screen. The parsed rules
depend on the CSS text, where it was read from, and the theme's variables substituted into it; the stylesheet caches
them by the first two for the length of a run (``Stylesheet._parse_cache``, emptied whenever the variables change).
This module fills that cache from a file at start (~3 ms) and, once a run, writes the rules of the sources
the app then has back to it (the first frame's), when they differ from the file's.

The file is tied to one install of Textual (its CSS code) and one set of variables (a theme): anything else, an
unreadable or damaged file included, is a miss and Textual parses as usual. It is only a cache: a failure to write
it is ignored.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

from ..core.files import write_atomic


def _fingerprint(stylesheet: Any) -> str:
    """What the parsed rules depend on besides their CSS: the variables, and Textual's CSS code, by the size and
    time of each file of ``textual/css`` (``textual.__version__`` reads the package metadata: ~17 ms)."""
    import textual.css

    folder = os.path.dirname(textual.css.__file__)
    files = sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in os.scandir(folder) if e.is_file())
    return repr((folder, files, sorted(getattr(stylesheet, "_variables", {}).items())))


class CssCache:
    """The parsed stylesheets of ``path`` (a pickle: its fingerprint, then the pickled entries)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loaded: frozenset[Any] = frozenset()
        self.saved = False

    def load(self, stylesheet: Any) -> int:
        """Fill the stylesheet's parse cache from the file, when it was written for this Textual and these
        variables; returns how many entries it gave."""
        cache = getattr(stylesheet, "_parse_cache", None)
        if cache is None:
            return 0
        try:
            with open(self.path, "rb") as f:
                fingerprint, body = pickle.load(f)
            if fingerprint != _fingerprint(stylesheet):
                return 0
            entries = pickle.loads(body)
            for key, rules in entries.items():
                cache[key] = rules
        except Exception:  # noqa: BLE001 - missing, damaged, or made by code changed since: parse as usual
            return 0
        self.loaded = frozenset(entries)
        return len(entries)

    def save(self, stylesheet: Any) -> bool:
        """Once a run (after the first frame: `TokentopApp.save_css`): write the parsed rules of the stylesheet's
        sources as they are now, when they are not what the file holds; returns whether it wrote. Rules the file
        held for other sources (another install's paths, CSS changed since) are left out: it never grows."""
        if self.saved:
            return False
        self.saved = True
        cache = getattr(stylesheet, "_parse_cache", None)
        sources = getattr(stylesheet, "source", None)
        if cache is None or sources is None:
            return False
        current = {where: source[0] for where, source in sources.items()}  # where from -> its CSS text
        entries = {key: cache.get(key) for key in cache.keys() if current.get(key[1]) == key[0]}
        if not entries or entries.keys() == self.loaded:
            return False
        try:  # (only this user may read or write it, as the team caches)
            body = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
            write_atomic(self.path, pickle.dumps((_fingerprint(stylesheet), body), protocol=pickle.HIGHEST_PROTOCOL),
                         mode=0o600)
        except Exception:  # noqa: BLE001 - read-only, full, or rules that do not pickle: the next start parses
            return False
        self.loaded = frozenset(entries)
        return True
