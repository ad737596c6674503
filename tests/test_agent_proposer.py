"""The agent proposer: a fake coding-agent script (a real subprocess) edits a scratch checkout.

One loop through the real CLI; the others in this process (conftest.run_loop), the same flow and proposer.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import pytest
from conftest import cli, git, run_loop
from fakes.aider_server import FakeServer

from autoresearch import ledger

pytestmark = pytest.mark.timeout(240)

FAKE_AGENT = Path(__file__).parent / "fakes" / "fake_agent.py"


def agent_env(tmp_path: Path, mode: str) -> dict[str, str]:
    return {"FAKE_AGENT_MODE": mode, "FAKE_AGENT_RECORD": str(tmp_path / "agent-runs.jsonl")}


COMMAND = f"{sys.executable} {FAKE_AGENT}"


def run(repo: Path, tmp_path: Path, mode: str, iterations: int = 1, prefetch: bool = False, **options):
    """The loop in this process with the fake agent in `mode`."""
    # the fake agent's runs are recorded in order: no proposal ahead of time (tests/test_prefetch.py covers that)
    env = agent_env(tmp_path, mode)
    return run_loop(repo, "a", env, iterations=iterations, proposer="agent", agent_command=COMMAND, prefetch=prefetch, **options)


def agent_runs(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "agent-runs.jsonl").read_text().splitlines()]


def rows(repo: Path):
    return ledger.read(repo / "results.tsv", "val_bpb")


def reasons(repo: Path) -> dict:
    return json.loads((repo / ".git/autoresearch/a.json").read_text())["reasons"]


@pytest.mark.slow
def test_agent_edits_a_scratch_checkout_and_its_change_is_trained(repo: Path, tmp_path: Path):
    (repo / "my-notes.txt").write_text("the user's own untracked work\n")
    flags = ["--tag", "a", "--proposer", "agent", "--agent-command", COMMAND, "--no-prefetch", "--iterations", "1"]
    result = cli("run", "--repo", str(repo), *flags, env=agent_env(tmp_path, "good"))  # the real CLI, once
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
    run(repo, tmp_path, "last-line")
    assert rows(repo)[1].description == "DEPTH 4 -> 6"


@pytest.mark.slow
def test_changes_outside_the_editable_files_are_refused_and_the_scratch_is_reset(repo: Path, tmp_path: Path):
    run(repo, tmp_path, "outside")
    crashed = rows(repo)[1]
    assert crashed.status == "crash"
    assert "outside the editable ones: notes.md, prepare.py" in reasons(repo)[crashed.commit]
    assert (repo / "prepare.py").read_text() == "MAX_SEQ_LEN = 64  # read-only\n"
    assert git(repo, "show", "--name-only", "--format=", crashed.commit).split() == ["train.py"]  # attempted edit only

    run(repo, tmp_path, "good")
    assert rows(repo)[2].status == "keep"
    scratch = repo / ".autoresearch/worktrees/agent-0"
    assert not (scratch / "notes.md").exists() and (scratch / "prepare.py").read_text() == "MAX_SEQ_LEN = 64  # read-only\n"


@pytest.mark.slow
def test_an_agent_past_its_timeout_is_killed_and_logged_as_a_crash(repo: Path, tmp_path: Path):
    started = time.monotonic()
    run(repo, tmp_path, "slow", agent_timeout=2)
    assert time.monotonic() - started < 200  # killed long before its 600 s sleep ends, even on a busy machine
    crashed = rows(repo)[1]
    assert crashed.status == "crash" and "timed out after 2 s" in reasons(repo)[crashed.commit]


@pytest.mark.slow
def test_a_crash_is_fixed_by_the_agent_on_top_of_the_crashed_commit(repo: Path, tmp_path: Path):
    run(repo, tmp_path, "crash-then-fix")
    entries = rows(repo)
    assert [r.status for r in entries[:2]] == ["keep", "crash"]
    assert entries[2].description == f"fix of {entries[1].commit}: remove the raise" and entries[2].status != "crash"
    assert git(repo, "rev-parse", "--short=7", f"{entries[2].commit}^") == entries[1].commit
    assert [r["fix"] for r in agent_runs(tmp_path)] == [False, True]


@pytest.mark.slow
def test_an_agent_that_commits_by_itself_and_leaves_scratch_files(repo: Path, tmp_path: Path):
    """Like aider: its commit subject is the description (no hash), its .aider* files are not edits."""
    run(repo, tmp_path, "commits")
    entry = rows(repo)[1]
    assert (entry.description, entry.status) == ("feat: DEPTH 4 -> 6 for more capacity", "keep")
    assert git(repo, "show", "--name-only", "--format=", entry.commit).split() == ["train.py"]
    assert ".aider*" in (repo / ".git/info/exclude").read_text().splitlines()
    assert (repo / ".autoresearch/worktrees/agent-0/.aider.chat.history.md").exists()  # left alone, not an edit


@pytest.mark.slow
def test_the_description_skips_an_agents_boilerplate_and_code(repo: Path, tmp_path: Path):
    run(repo, tmp_path, "applied")
    assert rows(repo)[1].description == "Deepen the model: DEPTH 4 -> 6."


@pytest.mark.slow
def test_an_agent_is_never_asked_ahead_so_no_run_is_thrown_away(repo: Path, tmp_path: Path):
    run(repo, tmp_path, "good", iterations=2, prefetch=True)
    assert len(rows(repo)) == 3 and len(agent_runs(tmp_path)) == 2  # one agent run per iteration


AIDER = shutil.which("aider") or str(Path(__file__).parents[1] / ".aider-venv" / "bin" / "aider")
AIDER_FLAGS = "--yes-always --no-gitignore --no-show-model-warnings --no-check-update --no-analytics --no-pretty"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    not os.access(AIDER, os.X_OK), reason="aider is not installed: bash .ci/run installs aider-chat in .aider-venv"
)
def test_the_documented_aider_command_line_works_with_the_real_aider(repo: Path, tmp_path: Path):
    """aider (from PyPI) against a local OpenAI-compatible server, with the command line docs/proposers.md gives."""
    (repo / "autoresearch.toml").write_text((repo / "autoresearch.toml").read_text() + 'agent_env = ["OPENAI_API_KEY"]\n')
    git(repo, "commit", "-qam", "the agent keeps its key")
    command = (
        f'{AIDER} --model openai/fake-model {AIDER_FLAGS} --read prepare.py --message-file "$AUTORESEARCH_PROMPT_FILE" train.py'
    )
    key = "sk-aider-test-key-0123456789"
    with FakeServer() as server:
        env = {"OPENAI_API_KEY": key, "OPENAI_API_BASE": server.base_url, "HOME": str(tmp_path / "home")}
        args = ["run", "--repo", str(repo), "--tag", "a", "--proposer", "agent", "--agent-command", command]
        result = cli(*args, "--iterations", "2", env=env, timeout=540)
        requests = server.requests
    assert result.returncode == 0, result.stderr
    entries = rows(repo)
    assert [(r.description, r.status) for r in entries[1:]] == [
        ("feat: raise LEARNING_RATE to 0.1 for faster convergence", "keep"),
        ("feat: deepen the model to 6 layers", "keep"),
    ]
    assert git(repo, "show", "autoresearch/a:train.py").count("LEARNING_RATE = 0.1") == 1
    for entry in entries[1:]:
        assert git(repo, "show", "--name-only", "--format=", entry.commit).split() == ["train.py"]
    assert {r["authorization"] for r in requests} == {f"Bearer {key}"}  # named in agent_env: the agent has its key
    asked = [_request_kind(r["messages"]) for r in requests]  # aider may also summarize its chat: not counted
    assert (asked.count("edit"), asked.count("commit message")) == (2, 2)  # one aider run per iteration
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert ".aider" not in status and ".gitignore" not in status  # the user's tree: no aider file, no .gitignore edit
    log = (repo / ".autoresearch/worktrees/agent-0.log").read_text()
    assert key not in log


def _request_kind(messages: list[dict]) -> str:
    system = " ".join(str(m.get("content")) for m in messages if m.get("role") == "system").lower()
    return "commit message" if "commit message" in system else "edit" if "expert software developer" in system else "other"
