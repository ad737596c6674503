"""Runs one training command as the leader of its own process group and takes the group down with it.

Started by the runner as `python -I supervisor.py <orchestrator-pid> <shell command>` in a new session.
If the orchestrator dies, even by SIGKILL, the kernel sends this process SIGTERM (PR_SET_PDEATHSIG) and
it kills the whole group: a training never outlives its loop. Standard library only, starts in ~20 ms.
"""

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_PDEATHSIG = 1


def kill_group(*_: object) -> None:
    os.killpg(0, signal.SIGKILL)  # the group includes this process


def signal_on_parent_death(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux). False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig)
    except (OSError, AttributeError):
        return False
    return True


def die_with_parent(parent_pid: int) -> None:
    if not signal_on_parent_death():  # not Linux: the runner's own kill and resume's cleanup remain
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        kill_group()


def main() -> int:
    parent_pid, command = int(sys.argv[1]), sys.argv[2]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, kill_group)
    die_with_parent(parent_pid)
    child = subprocess.Popen(command, shell=True)
    code = child.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
