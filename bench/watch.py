"""Run a loop command and watch it from outside: when each results.tsv row appears, and the RSS then."""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

POLL_SECONDS = 0.01


@dataclass
class Watched:
    returncode: int
    wall: float  # seconds from start to exit
    row_times: list[float] = field(default_factory=list)  # seconds from start until row i (0 = first row) appeared
    row_rss_kb: list[int] = field(default_factory=list)  # VmRSS of the loop process when row i appeared
    output_tail: str = ""  # the end of the command's output


def rss_kb(pid: int) -> int:
    """VmRSS of one process (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def count_rows(ledger: Path) -> int:
    """Whole data rows in results.tsv (header and a torn last line not counted)."""
    try:
        data = ledger.read_bytes()
    except FileNotFoundError:
        return 0
    return max(data.count(b"\n") - 1, 0)


def run_watched(command: list[str], ledger: Path, env: dict[str, str], log: Path) -> Watched:
    """Start `command` (all output to `log`); every POLL_SECONDS note new rows of `ledger`, the time and the RSS."""
    watched = Watched(returncode=0, wall=0.0)
    with open(log, "wb") as out:
        started = time.monotonic()
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        size = -1
        while True:
            done = process.poll() is not None
            try:
                current = os.stat(ledger).st_size
            except FileNotFoundError:
                current = -1
            if current != size:
                size = current
                rows = count_rows(ledger)
                now, rss = time.monotonic() - started, rss_kb(process.pid)
                while len(watched.row_times) < rows:
                    watched.row_times.append(now)
                    watched.row_rss_kb.append(rss)
            if done:
                break
            time.sleep(POLL_SECONDS)
        watched.wall = time.monotonic() - started
    watched.returncode = process.returncode
    watched.output_tail = log.read_text(errors="replace")[-2000:]
    return watched
