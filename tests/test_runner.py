"""run_command: real subprocesses, all output to the log, a hard timeout that takes the whole group down.

Nothing of a training may outlive its run, its timeout, or its loop (even a loop killed by SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from autoresearch.runner import kill_recorded, run_command, write_record

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process checks use /proc (Linux)")

# Starts 2 background sleeps (one directly, one in a nested shell), a nested shell that itself waits on a
# sleep, writes every PID to $PIDS, then waits for all of them.
TREE = textwrap.dedent(
    """\
    sleep 300 &
    echo $! >> "$PIDS"
    sh -c 'sleep 300 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; sleep 300' &
    echo $! >> "$PIDS"
    echo $$ >> "$PIDS"
    echo tree started
    wait
    """
)
TREE_PIDS = 5  # sleep, nested sleep, nested shell (twice: $$ inside and $! outside), the script's shell


def alive(pid: int) -> bool:
    """Running or sleeping; a zombie (killed, not yet reaped by its new parent) counts as dead."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_dead(pids: list[int], within: float = 3.0) -> list[int]:
    """The PIDs still alive after `within` seconds (polling)."""
    deadline = time.monotonic() + within
    while True:
        living = [pid for pid in pids if alive(pid)]
        if not living or time.monotonic() > deadline:
            return living
        time.sleep(0.05)


def read_pids(path: Path, count: int, within: float = 10.0) -> list[int]:
    deadline = time.monotonic() + within
    while True:
        pids = [int(x) for x in path.read_text().split()] if path.exists() else []
        if len(pids) >= count or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def cleanup(pids: list[int]) -> None:
    """Never leave sleeps behind, even when a test fails."""
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


@pytest.fixture
def pid_file(tmp_path: Path):
    path = tmp_path / "pids"
    yield path
    if path.exists():
        cleanup([int(x) for x in path.read_text().split()])


def script(tmp_path: Path, text: str, name: str = "tree.sh") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- output, exit codes, environment -----------------------------------------------------------------


def test_stdout_and_stderr_go_to_the_log(tmp_path: Path):
    log = tmp_path / "run.log"
    outcome = run_command("echo to-stdout; echo to-stderr >&2; printf 'no newline'", tmp_path, log, timeout=30)
    assert outcome.exit_code == 0 and outcome.timed_out is False
    text = log.read_text()
    assert "to-stdout" in text and "to-stderr" in text and "no newline" in text


def test_output_of_python_children_reaches_the_log_unbuffered_and_complete(tmp_path: Path):
    log = tmp_path / "run.log"
    code = "import sys\nfor i in range(20000): print(f'line {i}')\nprint('oops', file=sys.stderr)\n"
    (tmp_path / "train.py").write_text(code)
    outcome = run_command(f"{sys.executable} train.py", tmp_path, log, timeout=30)
    assert outcome.exit_code == 0
    lines = log.read_text().splitlines()
    assert "line 0" in lines and "line 19999" in lines and "oops" in lines
    assert len(lines) == 20001


def test_the_log_is_replaced_not_appended(tmp_path: Path):
    log = tmp_path / "run.log"
    log.write_text("an old run's output\n")
    run_command("echo new", tmp_path, log, timeout=30)
    assert log.read_text() == "new\n"


def test_runs_in_cwd(tmp_path: Path):
    work = tmp_path / "checkout"
    work.mkdir()
    log = tmp_path / "run.log"
    run_command("pwd; ls", work, log, timeout=30)
    assert log.read_text().splitlines()[0] == str(work)


@pytest.mark.parametrize("code", [0, 1, 3, 42, 255])
def test_returns_the_exit_code(tmp_path: Path, code: int):
    outcome = run_command(f"echo before; exit {code}", tmp_path, tmp_path / "run.log", timeout=30)
    assert outcome.exit_code == code
    assert outcome.timed_out is False
    assert outcome.seconds >= 0


def test_command_not_found_is_exit_127(tmp_path: Path):
    log = tmp_path / "run.log"
    outcome = run_command("definitely-not-a-command-4f2a9 train.py", tmp_path, log, timeout=30)
    assert outcome.exit_code == 127
    assert outcome.timed_out is False
    assert "not found" in log.read_text()


def test_a_command_killed_by_a_signal_is_a_nonzero_exit(tmp_path: Path):
    outcome = run_command("kill -9 $$", tmp_path, tmp_path / "run.log", timeout=30)
    assert outcome.exit_code not in (0, None)
    assert outcome.timed_out is False


def test_env_is_visible_to_the_command(tmp_path: Path):
    log = tmp_path / "run.log"
    env = {"AR_TEST_VALUE": "hello world", "CUDA_VISIBLE_DEVICES": "3"}
    run_command('echo "[$AR_TEST_VALUE] [$CUDA_VISIBLE_DEVICES]"; echo "path=$PATH"', tmp_path, log, timeout=30, env=env)
    text = log.read_text()
    assert "[hello world] [3]" in text
    assert f"path={os.environ['PATH']}" in text  # the rest of the environment is inherited


# --- the hard timeout and leftovers ------------------------------------------------------------------


def test_timeout_kills_children_and_grandchildren(tmp_path: Path, pid_file: Path):
    log = tmp_path / "run.log"
    tree = script(tmp_path, TREE)
    started = time.monotonic()
    outcome = run_command(f"sh {tree}", tmp_path, log, timeout=2, env={"PIDS": str(pid_file)})
    elapsed = time.monotonic() - started
    assert outcome.timed_out is True
    assert outcome.exit_code is None
    assert 2 <= outcome.seconds < 10 and elapsed < 10
    pids = read_pids(pid_file, TREE_PIDS, within=0)
    assert len(set(pids)) >= 4, pids
    assert not wait_dead(pids), f"still alive after the timeout: {wait_dead(pids, 0)}"
    assert "tree started" in log.read_text()


def test_timeout_kills_a_command_that_ignores_sigterm(tmp_path: Path, pid_file: Path):
    tree = script(tmp_path, "trap '' TERM INT HUP\n" + TREE)
    outcome = run_command(f"sh {tree}", tmp_path, tmp_path / "run.log", timeout=1.5, env={"PIDS": str(pid_file)})
    assert outcome.timed_out is True
    assert not wait_dead(read_pids(pid_file, TREE_PIDS, within=0))


def test_background_leftovers_of_a_finished_command_are_killed(tmp_path: Path, pid_file: Path):
    leftovers = script(
        tmp_path,
        'sleep 300 &\necho $! >> "$PIDS"\n'
        'sh -c \'sleep 300 & echo $! >> "$PIDS"; sleep 300\' &\necho $! >> "$PIDS"\n'
        "echo done\nexit 0\n",
    )
    outcome = run_command(f"sh {leftovers}", tmp_path, tmp_path / "run.log", timeout=30, env={"PIDS": str(pid_file)})
    assert outcome.exit_code == 0 and outcome.timed_out is False
    assert outcome.seconds < 10
    pids = read_pids(pid_file, 3, within=0)
    assert len(pids) == 3
    assert not wait_dead(pids), f"leftovers still alive: {wait_dead(pids, 0)}"


# --- recorded process groups -------------------------------------------------------------------------


def test_record_holds_the_group_while_running_and_is_removed_after(tmp_path: Path):
    record = tmp_path / "state" / "train.pgid"
    log = tmp_path / "run.log"
    command = (
        f"for i in $(seq 100); do [ -f {record} ] && break; sleep 0.05; done; cat {record}; echo; "
        f"{sys.executable} -c 'import os; print(\"pgid\", os.getpgid(0))'"
    )
    outcome = run_command(command, tmp_path, log, timeout=30, record=record)
    assert outcome.exit_code == 0
    assert not record.exists()
    first, second = log.read_text().strip().splitlines()
    data = json.loads(first)
    assert second == f"pgid {data['pgid']}"  # the recorded group is the command's own group
    assert data["pgid"] != os.getpgid(0)  # never ours


def test_record_is_removed_after_a_timeout(tmp_path: Path):
    record = tmp_path / "train.pgid"
    outcome = run_command("sleep 30", tmp_path, tmp_path / "run.log", timeout=0.5, record=record)
    assert outcome.timed_out is True
    assert not record.exists()


def start_group(tmp_path: Path, pid_file: Path) -> subprocess.Popen:
    """A process group like a training's: a leader shell with a background child."""
    process = subprocess.Popen(
        ["sh", "-c", f'sleep 300 & echo $! >> "{pid_file}"; echo $$ >> "{pid_file}"; wait'],
        start_new_session=True,
    )
    assert len(read_pids(pid_file, 2)) == 2
    return process


def test_kill_recorded_kills_a_live_group(tmp_path: Path, pid_file: Path):
    process = start_group(tmp_path, pid_file)
    record = tmp_path / "train.pgid"
    write_record(record, process.pid)
    assert kill_recorded(record) == process.pid
    assert process.wait(timeout=5) == -signal.SIGKILL
    assert not wait_dead(read_pids(pid_file, 2))
    assert not record.exists()


def test_kill_recorded_ignores_a_dead_group(tmp_path: Path, pid_file: Path):
    process = start_group(tmp_path, pid_file)
    record = tmp_path / "train.pgid"
    write_record(record, process.pid)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=5)
    assert not wait_dead(read_pids(pid_file, 2))
    assert kill_recorded(record) is None
    assert not record.exists()


def test_kill_recorded_ignores_a_missing_or_garbled_record(tmp_path: Path):
    assert kill_recorded(tmp_path / "nothing-here") is None
    garbled = tmp_path / "garbled.pgid"
    garbled.write_text("{not json")
    assert kill_recorded(garbled) is None


def test_kill_recorded_spares_a_recycled_pid(tmp_path: Path, pid_file: Path):
    """A live process with the recorded number but another start time is not the training: leave it."""
    process = start_group(tmp_path, pid_file)
    try:
        record = tmp_path / "train.pgid"
        record.write_text(json.dumps({"pgid": process.pid, "start": "1"}))
        assert kill_recorded(record) is None
        time.sleep(0.2)
        assert process.poll() is None
        assert all(alive(pid) for pid in read_pids(pid_file, 2))
        assert not record.exists()
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


# --- a training never outlives its loop --------------------------------------------------------------

LOOP = textwrap.dedent(
    """\
    import sys
    from concurrent.futures import ThreadPoolExecutor
    from pathlib import Path
    from autoresearch.runner import run_command

    work = Path(sys.argv[1])
    args = (sys.argv[2], work, work / "run.log", 300, {"PIDS": sys.argv[3]})
    if sys.argv[4] == "thread":  # as a thread-pool task runner would call it
        with ThreadPoolExecutor(1) as pool:
            pool.submit(run_command, *args).result()
    else:
        run_command(*args)
    print("run_command returned")
    """
)


@pytest.mark.parametrize("caller", ["main", "thread"])
def test_sigkill_of_the_loop_kills_the_training(tmp_path: Path, pid_file: Path, caller: str):
    tree = script(tmp_path, TREE)
    loop = subprocess.Popen(
        [sys.executable, "-c", LOOP, str(tmp_path), f"sh {tree}", str(pid_file), caller],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: only the loop itself gets the SIGKILL
    )
    try:
        pids = read_pids(pid_file, TREE_PIDS, within=20)
        assert len(pids) >= TREE_PIDS, f"the training did not start: {pids}"
        assert all(alive(pid) for pid in pids)
        os.kill(loop.pid, signal.SIGKILL)
        assert loop.wait(timeout=5) == -signal.SIGKILL
        living = wait_dead(pids, within=5)
        assert not living, f"training processes outlived their loop: {living}"
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
        loop.stdout.close()
