"""The agent proposer through the real CLI: a fake coding-agent script edits a scratch checkout."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from conftest import cli, git

from autoresearch import ledger

pytestmark = pytest.mark.timeout(240)

FAKE_AGENT = Path(__file__).parent / "fakes" / "fake_agent.py"


def run(repo: Path, tmp_path: Path, mode: str, *args: str):
    env = {"FAKE_AGENT_MODE": mode, "FAKE_AGENT_RECORD": str(tmp_path / "agent-runs.jsonl")}
    command = f"{sys.executable} {FAKE_AGENT}"
    # the fake agent's runs are recorded in order: no proposal ahead of time (tests/test_prefetch.py covers that)
    return cli(
        "run",
        "--repo",
        str(repo),
        "--tag",
        "a",
        "--proposer",
        "agent",
        "--agent-command",
        command,
        "--no-prefetch",
        *args,
        env=env,
    )


def agent_runs(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "agent-runs.jsonl").read_text().splitlines()]


def rows(repo: Path):
    return ledger.read(repo / "results.tsv", "val_bpb")


def reasons(repo: Path) -> dict:
    return json.loads((repo / ".git/autoresearch/a.json").read_text())["reasons"]


def test_agent_edits_a_scratch_checkout_and_its_change_is_trained(repo: Path, tmp_path: Path):
    (repo / "my-notes.txt").write_text("the user's own untracked work\n")
    result = run(repo, tmp_path, "good", "--iterations", "1")
    assert result.returncode == 0, result.stderr
    entries = rows(repo)
    assert [(r.description, r.status) for r in entries] == [("baseline", "keep"), ("LEARNING_RATE 0.04 -> 0.1", "keep")]
    assert "LEARNING_RATE = 0.1" in git(repo, "show", "autoresearch/a:train.py")
    assert git(repo, "show", "--name-only", "--format=", entries[1].commit).split() == ["train.py"]
    (record,) = agent_runs(tmp_path)
    assert Path(record["cwd"]) == (repo / ".autoresearch/worktrees/agent-0").resolve()  # never the user's tree
    assert (repo / "my-notes.txt").read_text() == "the user's own untracked work\n"
    assert record["prompt_chars"] > 500 and not record["fix"]


def test_description_from_the_agents_last_line(repo: Path, tmp_path: Path):
    result = run(repo, tmp_path, "last-line", "--iterations", "1")
    assert result.returncode == 0, result.stderr
    assert rows(repo)[1].description == "DEPTH 4 -> 6"


def test_changes_outside_the_editable_files_are_refused_and_the_scratch_is_reset(repo: Path, tmp_path: Path):
    result = run(repo, tmp_path, "outside", "--iterations", "1")
    assert result.returncode == 0, result.stderr
    crashed = rows(repo)[1]
    assert crashed.status == "crash"
    assert "outside the editable ones: notes.md, prepare.py" in reasons(repo)[crashed.commit]
    assert (repo / "prepare.py").read_text() == "MAX_SEQ_LEN = 64  # read-only\n"
    assert git(repo, "show", "--name-only", "--format=", crashed.commit).split() == ["train.py"]  # attempted edit only

    again = run(repo, tmp_path, "good", "--iterations", "1")
    assert again.returncode == 0, again.stderr
    assert rows(repo)[2].status == "keep"
    scratch = repo / ".autoresearch/worktrees/agent-0"
    assert not (scratch / "notes.md").exists() and (scratch / "prepare.py").read_text() == "MAX_SEQ_LEN = 64  # read-only\n"


def test_an_agent_past_its_timeout_is_killed_and_logged_as_a_crash(repo: Path, tmp_path: Path):
    started = time.monotonic()
    result = run(repo, tmp_path, "slow", "--iterations", "1", "--agent-timeout", "2")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 45
    crashed = rows(repo)[1]
    assert crashed.status == "crash" and "timed out after 2 s" in reasons(repo)[crashed.commit]


def test_a_crash_is_fixed_by_the_agent_on_top_of_the_crashed_commit(repo: Path, tmp_path: Path):
    result = run(repo, tmp_path, "crash-then-fix", "--iterations", "1")
    assert result.returncode == 0, result.stderr
    entries = rows(repo)
    assert [r.status for r in entries[:2]] == ["keep", "crash"]
    assert entries[2].description == f"fix of {entries[1].commit}: remove the raise" and entries[2].status != "crash"
    assert git(repo, "rev-parse", "--short=7", f"{entries[2].commit}^") == entries[1].commit
    assert [r["fix"] for r in agent_runs(tmp_path)] == [False, True]
