"""Per-file read state: device+inode, byte offset of the first unread byte; only complete lines are read.

A half-written last line is left in the file (the offset stays at its start) and read whole on the next change,
so it is counted exactly once. A file that shrank or was replaced (new inode) is read again from 0.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import msgspec

CHUNK = 16 << 20


class FileState(msgspec.Struct):
    """How far one file has been read."""

    path: str
    kind: str  # "claude" | "internal"
    dev: int = 0
    ino: int = 0
    offset: int = 0
    size: int = 0
    mtime: float = 0.0
    tail: bytes = b""  # the last bytes before ``offset``: a file rewritten in place no longer has them there


class Change(msgspec.Struct):
    """What `poll` found: ``reset`` means the file was truncated or replaced and is read from 0."""

    state: FileState
    reset: bool
    gone: bool = False


def poll(state: FileState, st: os.stat_result | None = None) -> Change | None:
    """Compare the file on disk (``st``: its stat, when the caller has one) with its state; ``None`` when there
    is nothing new to read."""
    if st is None:
        try:
            st = os.stat(state.path)
        except FileNotFoundError:
            return Change(state, reset=False, gone=True)
        except OSError:
            return None
    if (st.st_size == state.offset and st.st_mtime == state.mtime and st.st_ino == state.ino
            and st.st_dev == state.dev):
        return None  # the common case first, without building tuples: a catch-up asks this of every file
    replaced = (st.st_dev, st.st_ino) != (state.dev, state.ino) and state.ino != 0
    truncated = st.st_size < state.offset
    if not replaced and not truncated and st.st_size == state.offset and st.st_mtime == state.mtime:
        return None
    rewritten = not replaced and not truncated and not _tail_matches(state)
    if not (replaced or truncated or rewritten) and st.st_size == state.offset:
        return None  # touched, not changed
    new = msgspec.structs.replace(state, dev=st.st_dev, ino=st.st_ino, size=st.st_size, mtime=st.st_mtime)
    reset = replaced or truncated or rewritten
    if reset:
        new.offset = 0
        new.tail = b""
    return Change(new, reset=reset)


def _tail_matches(state: FileState) -> bool:
    """The bytes before the offset are still the ones read (a truncate-and-rewrite that grew past the offset
    before we looked would otherwise go unnoticed)."""
    if not state.tail or not state.offset:
        return True
    try:
        with open(state.path, "rb") as f:
            return os.pread(f.fileno(), len(state.tail), state.offset - len(state.tail)) == state.tail
    except OSError:
        return True


TAIL_BYTES = 64


def read_complete(path: str, offset: int = 0, chunk: int = CHUNK) -> Iterator[tuple[bytes, int]]:
    """Yield buffers of complete lines from ``offset`` on, each with the file offset just past it.

    A final segment without ``\\n`` is not yielded: it is not a line yet.
    """
    with open(path, "rb") as f:
        if offset:
            f.seek(offset)
        start = offset  # file offset of data[0]
        pending = b""
        while True:
            more = f.read(chunk)
            if not more:
                return
            data = pending + more if pending else more
            cut = data.rfind(b"\n")
            if cut == -1:
                pending = data
                continue
            end = start + cut + 1
            yield data[: cut + 1], end
            pending = data[cut + 1:]
            start = end


def new_state(path: str, kind: str) -> FileState:
    """State of a file not read yet, stamped with its identity."""
    try:
        st = os.stat(path)
        return FileState(path, kind, st.st_dev, st.st_ino, 0, st.st_size, st.st_mtime)
    except OSError:
        return FileState(path, kind)
