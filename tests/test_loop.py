"""The research loop end to end on real git repos with a fast real training subprocess.

Through the real CLI where the CLI's part is under test (a run and its resume, exit codes, one-line errors,
signals, the lock); the loop's behaviour otherwise in this process (conftest.run_loop), the same flow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import cli, git, run_loop

from autoresearch import ledger
from autoresearch.errors import UserError

pytestmark = pytest.mark.timeout(240)


def rows(repo: Path):
    return ledger.read(repo / "results.tsv", "val_bpb")


def assert_invariants(repo: Path, tag: str) -> None:
    """The loop's invariants: no duplicate row per commit, tip == last keep, clean tracked files, prepare.py intact."""
    entries = rows(repo)
    commits = [row.commit for row in entries]
    assert len(commits) == len(set(commits)), commits
    keeps = [row for row in entries if row.status == "keep"]
    assert entries[0].description == "baseline" and entries[0].status == "keep"
    assert git(repo, "rev-parse", "--short=7", f"autoresearch/{tag}") == keeps[-1].commit
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD") == f"autoresearch/{tag}"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert git(repo, "diff", "main", f"autoresearch/{tag}", "--", "prepare.py") == ""
    tip = git(repo, "rev-parse", f"autoresearch/{tag}")
    for row in entries[1:]:
        full = git(repo, "rev-parse", row.commit)
        assert git(repo, "cat-file", "-t", f"refs/autoresearch/{tag}/{full}") == "commit"  # reachable forever
        assert git(repo, "show", "--name-only", "--format=", full).split() == ["train.py"]  # editable only
        on_branch = subprocess.run(["git", "merge-base", "--is-ancestor", full, tip], cwd=repo).returncode == 0
        assert on_branch == (row.status == "keep"), row


@pytest.mark.slow
def test_three_iterations_then_resume_without_second_baseline(repo: Path):
    first = cli("run", "--repo", str(repo), "--tag", "demo", "--iterations", "3")
    assert first.returncode == 0, first.stderr
    entries = rows(repo)
    assert len(entries) == 4
    assert all(" -> " in row.description for row in entries[1:])
    assert_invariants(repo, "demo")
    assert "results.tsv" in (repo / ".git/info/exclude").read_text()
    assert git(repo, "ls-files", "results.tsv") == ""
    frame = pd.read_csv(repo / "results.tsv", sep="\t")
    assert list(frame.columns) == ["commit", "val_bpb", "memory_gb", "status", "description"]

    assert "4 rows in results.tsv" in first.stdout, first.stdout  # the closing summary on the terminal

    run_loop(repo, "demo", iterations=2)  # the CLI's own resume: tests/test_demo.py
    entries = rows(repo)
    assert len(entries) == 6
    assert [row.description for row in entries].count("baseline") == 1
    assert_invariants(repo, "demo")


@pytest.mark.slow
def test_crashed_runs_are_crash_rows_and_the_loop_goes_on(repo: Path):
    """Each way a training can crash, in turn on one loop: two crash rows each, and the loop goes on."""
    run_loop(repo, "t", iterations=1)
    crashes = [{"FAKE_MODE": mode} for mode in ("exit", "fail", "nan", "nometric")]
    for env in [*crashes, {"AUTORESEARCH_COMMAND": "no-such-trainer-xyz"}]:  # the last: the command is not found
        before = len(rows(repo))
        summary = run_loop(repo, "t", iterations=2, env=env)
        assert summary.iterations_run == 2, env
        entries = rows(repo)[before:]
        assert [row.status for row in entries] == ["crash", "crash"], env
        assert all(row.value == 0.0 and row.memory_gb == 0.0 for row in entries), env
        assert_invariants(repo, "t")
    assert "0.000000\t0.0\tcrash" in (repo / "results.tsv").read_text()
    log = sorted((repo / ".autoresearch/logs/t").iterdir())[-1].read_text()
    assert "not found" in log


@pytest.mark.slow
def test_a_crashed_baseline_stops_with_one_line(repo: Path):
    result = cli("run", "--repo", str(repo), "--tag", "t", "--iterations", "2", env={"FAKE_MODE": "exit"})
    assert result.returncode == 2
    assert "baseline run crashed" in result.stderr and "Traceback" not in result.stderr
    assert [(row.description, row.status) for row in rows(repo)] == [("baseline", "crash")]


@pytest.mark.slow
def test_hard_timeout_makes_a_crash_row(repo: Path):
    run_loop(repo, "t", iterations=1)
    started = time.monotonic()
    run_loop(repo, "t", iterations=1, timeout_seconds=2, env={"FAKE_TRAIN_SECONDS": "60"})
    assert time.monotonic() - started < 45  # killed at 2 s, long before the 60 s sleep ends, even on a busy machine
    assert rows(repo)[-1].status == "crash"
    assert_invariants(repo, "t")


def _start_loop(repo: Path, *args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", "run", "--repo", str(repo), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_training(repo: Path, after_rows: int, timeout: float = 120) -> int:
    """Wait until a training runs after `after_rows` rows are logged; returns its process group."""
    record = repo / ".git/autoresearch/training.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if record.exists() and (repo / "results.tsv").exists() and len(rows(repo)) >= after_rows:
            import json

            try:
                return json.loads(record.read_text())["pgid"]
            except ValueError:
                pass
        time.sleep(0.2)
    raise AssertionError("no training started")


def _group_alive(pgid: int) -> bool:
    """A live (non-zombie) process in the group: zombies wait for an init that may not reap them here."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_dead(pgid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_resume_after_sigkill_mid_training(repo: Path):
    run_loop(repo, "k", iterations=1)
    loop = _start_loop(repo, "--tag", "k", "--iterations", "3", env={"FAKE_TRAIN_SECONDS": "30"})
    pgid = _wait_for_training(repo, after_rows=2)
    in_flight = git(repo, "rev-parse", "--short=7", "autoresearch/k")
    loop.send_signal(signal.SIGKILL)
    loop.wait()
    assert _wait_dead(pgid), "the training outlived its loop"
    assert len(rows(repo)) == 2

    run_loop(repo, "k", iterations=1)
    entries = rows(repo)
    assert len(entries) == 3
    assert entries[2].commit == in_flight  # the experiment in flight was finished, not replaced
    assert_invariants(repo, "k")


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_stops_cleanly_and_resumes(repo: Path, sig: int):
    run_loop(repo, "c", iterations=1)
    loop = _start_loop(repo, "--tag", "c", env={"FAKE_TRAIN_SECONDS": "30"})  # forever
    pgid = _wait_for_training(repo, after_rows=2)
    loop.send_signal(sig)
    _, stderr = loop.communicate(timeout=60)
    assert loop.returncode == 130, stderr
    assert "resume" in stderr and "Traceback" not in stderr
    assert _wait_dead(pgid, timeout=5)
    assert len(rows(repo)) == 2
    assert_invariants(repo, "c")  # branch back at the last keep, nothing half-written
    run_loop(repo, "c", iterations=1)
    assert len(rows(repo)) == 3
    assert_invariants(repo, "c")


@pytest.mark.slow
def test_second_loop_on_the_same_repo_is_refused(repo: Path):
    loop = _start_loop(repo, "--tag", "a", env={"FAKE_TRAIN_SECONDS": "30"})
    try:
        _wait_for_training(repo, after_rows=0)
        second = cli("run", "--repo", str(repo), "--tag", "b", "--iterations", "1")
        assert second.returncode == 2
        assert f"pid {loop.pid}" in second.stderr and "Traceback" not in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        loop.send_signal(signal.SIGINT)
        loop.communicate(timeout=60)


@pytest.mark.slow
def test_changed_read_only_file_stops_the_loop(repo: Path):
    run_loop(repo, "r", iterations=1)
    with pytest.raises(UserError, match="read-only file prepare.py changed"):
        run_loop(repo, "r", iterations=3, env={"FAKE_TAMPER": str(repo / "prepare.py")})
