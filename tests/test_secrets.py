"""Credentials stay out of experiments: clean environments for subprocesses, redaction of what is stored."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from conftest import FAST_TRAIN, make_repo, run_loop
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterTags,
    LogFilter,
    LogFilterFlowRunId,
)

from autoresearch import ledger
from autoresearch.runner import run_command
from autoresearch.secrets import REDACTED, clean_env, known_secrets, redact, redact_file, remember

FAKE_AGENT = Path(__file__).parent / "fakes" / "fake_agent.py"
KEY = "sk-test-0123456789abcdefOPENAI"  # the loop's provider key: only the agent may have it
GITHUB = "ghp_fakeGithubToken987654321"
DB_URL = "postgres://loop:hunter2hunter2@db/x"  # not credential-shaped: dropped by env_drop
PRINTS_ITS_ENVIRONMENT = """import os
for name, value in sorted(os.environ.items()):
    print(f"env {name}={value}")
print("secret read from a file:", open(os.environ["SECRET_FILE"]).read())
"""


def test_clean_env_drops_credentials_and_keeps_what_is_asked() -> None:
    environ = {
        "OPENAI_API_KEY": "a" * 10,
        "GITHUB_TOKEN": "b" * 10,
        "AWS_SECRET_ACCESS_KEY": "c" * 10,
        "DB_PASSWORD": "d" * 10,
        "MY_SECRET": "e" * 10,
        "DATABASE_URL": "f" * 10,
        "PATH": "/usr/bin",
        "TOKENIZERS_PARALLELISM": "false",
    }
    assert clean_env(environ) == {"DATABASE_URL": "f" * 10, "PATH": "/usr/bin", "TOKENIZERS_PARALLELISM": "false"}
    assert clean_env(environ, drop=["DATABASE_URL"], keep=["OPENAI_API_KEY"]) == {
        "OPENAI_API_KEY": "a" * 10,
        "PATH": "/usr/bin",
        "TOKENIZERS_PARALLELISM": "false",
    }


def test_known_secrets_are_redacted_longest_first_and_short_values_are_left() -> None:
    environ = {"A_TOKEN": "abcdef", "B_API_KEY": "abcdef-and-more", "C_PASSWORD": "none", "PATH": "/usr/bin/abcdef"}
    secrets = known_secrets(environ)
    from_environ = [value for value in secrets if value in environ.values()]  # others: values remembered earlier
    assert from_environ == ["abcdef-and-more", "abcdef"]
    assert redact("key abcdef-and-more, token abcdef, none", secrets) == f"key {REDACTED}, token {REDACTED}, none"
    remember("a-secret-block-value")
    assert "a-secret-block-value" in known_secrets({})


def test_a_command_gets_no_credentials_and_its_redacted_file(tmp_path: Path) -> None:
    os.environ["ZZ_TEST_API_KEY"] = "zz-secret-value-42"
    try:
        log = tmp_path / "run.log"
        command = f"{sys.executable} -c \"import os; print(sorted(os.environ)); print('zz-secret-value-42')\""
        outcome = run_command(command, cwd=tmp_path, log_path=log, timeout=60)
        assert outcome.exit_code == 0
        printed = log.read_text()
        assert "ZZ_TEST_API_KEY" not in printed and "PATH" in printed
        assert redact_file(log) and "zz-secret-value-42" not in log.read_text() and REDACTED in log.read_text()
    finally:
        del os.environ["ZZ_TEST_API_KEY"]


def _stored_files(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file() and not path.is_symlink()]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_training_that_prints_its_environment_leaks_no_credential(tmp_path: Path) -> None:
    """Training and agent runs print what they have; nothing stored or sent holds a credential."""
    train = PRINTS_ITS_ENVIRONMENT + FAST_TRAIN
    data = tmp_path / "data"
    config = f'command = "{{python}} train.py"\ndata_check = "{data}"\ntimeout_seconds = 60\n'
    config += 'env_drop = ["MY_DB_URL"]\nagent_env = ["OPENAI_API_KEY"]\n'
    repo = make_repo(tmp_path / "exp", train=train, config=config, data=data)
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(KEY)  # a training that finds the key some other way: its log is redacted
    saved = tmp_path / "agent-saw"
    env = {
        "OPENAI_API_KEY": KEY,
        "GITHUB_TOKEN": GITHUB,
        "MY_DB_URL": DB_URL,
        "SECRET_FILE": str(secret_file),
        "FAKE_AGENT_MODE": "crash-then-fix",
        "FAKE_AGENT_RECORD": str(tmp_path / "agent-runs.jsonl"),
        "FAKE_AGENT_SAVE": str(saved),
    }
    agent = f"{sys.executable} {FAKE_AGENT}"
    run_loop(repo, "leak", env, iterations=1, proposer="agent", agent_command=agent)  # the crash, then its fix
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert [r.status for r in rows[:2]] == ["keep", "crash"] and rows[2].status != "crash"  # the crash, its fix

    baseline_log = next((repo / ".autoresearch" / "logs" / "leak").glob("0000-*.log")).read_text()
    assert "env PATH=" in baseline_log and f"secret read from a file: {REDACTED}" in baseline_log
    for name in ("OPENAI_API_KEY", "GITHUB_TOKEN", "MY_DB_URL"):
        assert f"env {name}=" not in baseline_log  # the training's environment had none of them

    agent_env = json.loads((saved / "env-0.json").read_text())
    assert agent_env["OPENAI_API_KEY"] == KEY  # named in agent_env: the agent keeps the key it needs
    assert "GITHUB_TOKEN" not in agent_env and "MY_DB_URL" not in agent_env
    fix_prompt = (saved / "prompt-1.md").read_text()
    assert "fix attempt" in fix_prompt and REDACTED in fix_prompt and KEY not in fix_prompt

    prefect_home = Path(os.environ["PREFECT_HOME"])
    for path in _stored_files(repo, prefect_home):
        data_bytes = path.read_bytes()
        for secret in (KEY, GITHUB, DB_URL):
            assert secret.encode() not in data_bytes, f"{secret} stored in {path}"

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=["leak"])))
        ids = [run.id for run in runs]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=ids)))
    assert ids and artifacts
    stored = json.dumps([log.message for log in logs]) + json.dumps([a.model_dump(mode="json") for a in artifacts])
    for secret in (KEY, GITHUB, DB_URL):
        assert secret not in stored
