"""One loop per repository: an exclusive flock in the repo's git directory, released when the process dies."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autoresearch.errors import UserError

_held: dict[Path, int] = {}  # lock path -> fd, so the CLI and the flow it runs share one lock


@contextmanager
def loop_lock(path: Path) -> Iterator[None]:
    """Hold the repo's loop lock; re-entrant within one process."""
    if path in _held:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise UserError(
            f"another autoresearch loop (pid {holder}) is running on this repo; stop it first (kill {holder})"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _held[path] = fd
    try:
        yield
    finally:
        del _held[path]
        os.close(fd)
