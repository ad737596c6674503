"""One training at a time per GPU slot, with the next one ready: the hand-over between trainings.

A slot's worker holds two runs at once (`RUNS_PER_SLOT`). While one trains, the next one's process has
already started (Python, Prefect, the flow's imports), checked out its commit in a worktree of its own
(its *seat*) and verified the read-only files; it then waits for the slot's *turn* and starts training
the moment the previous training ends. The GPU never waits for a process to start.

Both are flocks in files of this host (`AUTORESEARCH_HOME/slots/`), released by the kernel when the
process that holds them dies, so a killed run never blocks its slot.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RUNS_PER_SLOT = 2  # the run training on the slot and the next one, started and ready
HANDOVER_GRACE_SECONDS = 120.0  # beyond the running training's hard timeout, before a waiting run gives up
POLL_SECONDS = 0.05  # how often a waiting run tries the slot: the hand-over costs at most this
HOME_ENV = "AUTORESEARCH_HOME"  # a worker host's own directory (clones of remote repos, slot locks)


class SlotBusy(RuntimeError):
    """The slot stayed taken for longer than any training may run: another process trains on it."""


def home() -> Path:
    return Path(os.environ.get(HOME_ENV) or "~/.cache/autoresearch").expanduser()


def longest_wait(timeout_seconds: float, grace: float = HANDOVER_GRACE_SECONDS) -> float:
    """How long a run waits for its turn at most: the running training's hard timeout, plus a grace."""
    return timeout_seconds + grace


class SlotTurn:
    """`with turn.seat() as seat:` prepare in worktree `seat`; `with turn.training(timeout):` train."""

    def __init__(self, slot: int, directory: Path | None = None) -> None:
        self.slot = slot
        self.directory = directory or home() / "slots"
        self.directory.mkdir(parents=True, exist_ok=True)  # once, not at every 50 ms try

    @contextmanager
    def seat(self) -> Iterator[int]:
        """One of the slot's RUNS_PER_SLOT seats (each its own worktree), free for this run's lifetime."""
        while True:
            for seat in range(RUNS_PER_SLOT):
                fd = _try_lock(self.directory / f"slot-{self.slot}.seat-{seat}.lock")
                if fd is not None:
                    try:
                        yield seat
                    finally:
                        os.close(fd)
                    return
            time.sleep(POLL_SECONDS)  # more runs than seats: only when two workers share a slot number

    @contextmanager
    def training(self, timeout_seconds: float, grace: float = HANDOVER_GRACE_SECONDS) -> Iterator[float]:
        """Wait for the slot (at most `longest_wait`), hold it while the block trains; yields the seconds waited."""
        path = self.directory / f"slot-{self.slot}.lock"
        started = time.monotonic()
        limit = longest_wait(timeout_seconds, grace)
        fd = _try_lock(path)
        while fd is None:
            if time.monotonic() - started > limit:
                raise SlotBusy(
                    f"slot {self.slot} stayed busy for {limit:.0f} s, longer than any training may run: "
                    f"is a second worker using slot {self.slot} on this host? (lock {path})"
                )
            time.sleep(POLL_SECONDS)
            fd = _try_lock(path)
        try:
            yield time.monotonic() - started
        finally:
            os.close(fd)


def _try_lock(path: Path) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
