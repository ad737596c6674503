"""Bad input: one line on stderr that says what to do, a non-zero exit, no traceback, nothing lost.

Every error goes through the real CLI; a loop that only sets the stage, or whose repair is under test,
runs in this process (conftest.run_loop).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli, git, make_repo, run_loop


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def run(repo: Path, *extra: str, env: dict | None = None):
    return cli("run", "--repo", str(repo), "--tag", "t", "--iterations", "1", *extra, env=env)


def test_not_a_git_repo(tmp_path: Path):
    (tmp_path / "train.py").write_text("X = 1\n")
    assert_one_line_error(run(tmp_path), "not a git repository", "git init")


def test_uncommitted_changes_in_an_editable_file_are_kept(repo: Path):
    (repo / "train.py").write_text((repo / "train.py").read_text() + "# my idea\n")
    assert_one_line_error(run(repo), "uncommitted changes in train.py", "commit or stash")
    assert (repo / "train.py").read_text().endswith("# my idea\n")
    assert not git(repo, "branch", "--list", "autoresearch/*")


def test_uncommitted_changes_in_a_read_only_file(repo: Path):
    (repo / "prepare.py").write_text("MAX_SEQ_LEN = 65\n")
    assert_one_line_error(run(repo), "uncommitted changes in prepare.py")
    assert (repo / "prepare.py").read_text() == "MAX_SEQ_LEN = 65\n"


@pytest.mark.parametrize(("name", "kind"), [("train.py", "editable"), ("prepare.py", "read-only")])
def test_missing_file(repo: Path, name: str, kind: str):
    git(repo, "rm", "-q", name)
    git(repo, "commit", "-q", "-m", f"remove {name}")
    assert_one_line_error(run(repo), f"{kind} file {name} is missing")


def test_data_not_prepared_names_the_prepare_command(tmp_path: Path):
    data = tmp_path / "nodata"
    repo = make_repo(
        tmp_path / "exp",
        config=f'command = "{{python}} train.py"\ndata_check = "{data}"\nprepare_command = "autoresearch prepare --repo {{repo}}"\n',
    )
    assert_one_line_error(run(repo), "data is not prepared", f"autoresearch prepare --repo {repo}")


def test_default_data_check_names_uv_run_prepare(tmp_path: Path):
    repo = make_repo(tmp_path / "exp", config='data_check = "/nonexistent/autoresearch-cache"\n')
    assert_one_line_error(run(repo), "uv run prepare.py")


def test_branch_without_results_tsv(repo: Path):
    git(repo, "branch", "autoresearch/t")
    assert_one_line_error(run(repo), "branch autoresearch/t exists but results.tsv does not")


@pytest.mark.slow
def test_results_tsv_without_branch(repo: Path):
    run_loop(repo, "t", iterations=1)
    result = cli("run", "--repo", str(repo), "--tag", "other", "--iterations", "1")
    assert_one_line_error(result, "results.tsv exists but branch autoresearch/other does not", "--tag t")


@pytest.mark.slow
def test_malformed_results_tsv_is_reported_and_untouched(repo: Path):
    run_loop(repo, "t", iterations=1)
    path = repo / "results.tsv"
    broken = path.read_text().replace("commit\tval_bpb", "commit,val_bpb", 1)
    path.write_text(broken)
    assert_one_line_error(run(repo), "header")
    assert path.read_text() == broken


@pytest.mark.slow
def test_torn_last_line_is_repaired_not_dropped(repo: Path):
    run_loop(repo, "t", iterations=1)
    path = repo / "results.tsv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines) + "\nabc1234\t1.0")  # a row cut mid-write
    run_loop(repo, "t", iterations=1)
    text = path.read_text()
    assert text.endswith("\n") and "abc1234\t1.0\n" not in text
    assert (repo / "results.tsv.torn").read_text() == "abc1234\t1.0\n"  # kept, not dropped
    assert len(text.splitlines()) == len(lines) + 1


@pytest.mark.slow
def test_missing_newline_of_last_row_is_completed(repo: Path):
    run_loop(repo, "t", iterations=1)
    path = repo / "results.tsv"
    before = path.read_text().splitlines()
    path.write_text("\n".join(before))  # the newline of the last row was lost
    run_loop(repo, "t", iterations=1)
    after = path.read_text().splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 1


def test_invalid_config_value_names_the_key(tmp_path: Path):
    repo = make_repo(tmp_path / "exp", config='timeout_seconds = "soon"\n')
    assert_one_line_error(run(repo), "timeout_seconds")


def test_unknown_config_key_is_named(tmp_path: Path):
    repo = make_repo(tmp_path / "exp", config="learning_rate = 3\n")
    assert_one_line_error(run(repo), "unknown key 'learning_rate'")


@pytest.mark.parametrize("count", ["0", "-3"])
def test_iterations_must_be_positive(repo: Path, count: str):
    result = cli("run", "--repo", str(repo), "--iterations", count)
    assert_one_line_error(result, "--iterations must be at least 1")


def test_unknown_proposer(repo: Path):
    assert_one_line_error(run(repo, "--proposer", "oracle"), "unknown proposer 'oracle'")


def test_invalid_tag(repo: Path):
    result = cli("run", "--repo", str(repo), "--tag", "a b", "--iterations", "1")
    assert_one_line_error(result, "invalid --tag")


def test_llm_proposer_without_model(repo: Path):
    assert_one_line_error(cli("run", "--repo", str(repo), "--proposer", "llm"), "--model")


def test_llm_proposer_with_unknown_provider(repo: Path):
    result = cli("run", "--repo", str(repo), "--proposer", "llm", "--model", "nosuchprovider:model-x")
    assert_one_line_error(result, "--model nosuchprovider:model-x")


def test_llm_proposer_without_api_key(repo: Path):
    result = cli(
        "run", "--repo", str(repo), "--proposer", "llm", "--model", "anthropic:claude-sonnet-4-5", env={"ANTHROPIC_API_KEY": ""}
    )
    assert_one_line_error(result, "ANTHROPIC_API_KEY")


def test_agent_proposer_without_command(repo: Path):
    assert_one_line_error(cli("run", "--repo", str(repo), "--proposer", "agent"), "--agent-command")
