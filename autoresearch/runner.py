"""Run a training command: own process group, all output to a log, hard timeout that kills the group."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from autoresearch.secrets import clean_env

SUPERVISOR = Path(__file__).with_name("supervisor.py")


@dataclass(frozen=True)
class RunOutcome:
    exit_code: int | None
    timed_out: bool
    seconds: float


def run_command(
    command: str,
    cwd: Path,
    log_path: Path,
    timeout: float,
    env: dict[str, str] | None = None,
    record: Path | None = None,
    stdin: Path | None = None,
    drop: Iterable[str] = (),
    keep: Iterable[str] = (),
) -> RunOutcome:
    """Run `command` through the shell in `cwd`; stdout and stderr go to `log_path`.

    After `timeout` seconds, or if this process is interrupted, the whole process group (children
    and grandchildren) is killed with SIGKILL. `record` names a file that holds the group while it runs,
    so a later process can kill it if this one dies (see `kill_recorded`). `stdin` names a file to feed
    the command (default: no input). The command's environment is this process's without credentials
    (autoresearch.secrets: `drop` names more variables to remove, `keep` the ones it may have), plus `env`.
    """
    started = time.monotonic()
    timed_out = False
    with open(log_path, "wb") as log, open(stdin or os.devnull, "rb") as source:
        process = subprocess.Popen(
            [sys.executable, "-I", str(SUPERVISOR), str(os.getpid()), command],
            cwd=cwd,
            stdin=source,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**clean_env(drop=drop, keep=keep), "PYTHONUNBUFFERED": "1", **(env or {})},
            start_new_session=True,
        )
    try:
        if record:
            write_record(record, process.pid)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
    finally:
        kill_group(process.pid)  # leftovers too: nothing of a training outlives its run
        process.wait()
        if record:
            record.unlink(missing_ok=True)
    return RunOutcome(
        exit_code=None if timed_out else process.returncode,
        timed_out=timed_out,
        seconds=time.monotonic() - started,
    )


def kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks (Linux), to tell a live group from a recycled pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def write_record(path: Path, pgid: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps({"pgid": pgid, "start": _start_time(pgid)}))
    os.replace(temp, path)


def kill_recorded(path: Path) -> int | None:
    """Kill the process group recorded in `path` if it is still alive. Returns the group it killed."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    pgid = int(data["pgid"])
    alive = _start_time(pgid)
    killed = None
    if alive is not None and (data.get("start") is None or alive == data["start"]):
        kill_group(pgid)
        killed = pgid
    path.unlink(missing_ok=True)
    return killed
