"""Writing files that other processes read while they change: never a half-written file."""

from __future__ import annotations

import os
from pathlib import Path


def write_atomic(path: Path, data: str | bytes, mode: int = 0o666) -> None:
    """Write ``data`` beside ``path`` and rename it over ``path`` (readers see the old or the new file);
    ``mode``: the new file's permissions (before the umask), e.g. 0o600 for a file only this user may read."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    os.replace(tmp, path)
