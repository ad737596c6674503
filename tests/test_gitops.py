"""The loop's git operations (GitPython): commits made without touching the user's index or working tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import FAST_TRAIN, git

from autoresearch.gitops import Git, GitFailed


def test_commit_tree_leaves_index_and_working_tree_alone_and_keeps_content_exact(repo: Path):
    (repo / "train.py").write_text("LR = 0.5  # the user's own uncommitted edit\n")
    ws = Git(repo)
    parent = ws.head()
    files = {"train.py": "LR = 0.2\n\n", "new.py": "x = 1"}  # trailing blank line; no final newline
    commit = ws.commit_tree(parent, files, "an idea\n\nAutoresearch-Tag: t\nAutoresearch-Iteration: 3\n")
    assert ws.head() == parent and ws.parent(commit) == parent
    assert (repo / "train.py").read_text() == "LR = 0.5  # the user's own uncommitted edit\n"
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == "M train.py"
    assert ws.show(commit, "train.py") == "LR = 0.2\n\n" and ws.show(commit, "new.py") == "x = 1"
    assert ws.show(commit, "missing.py") is None and ws.show("0" * 40, "train.py") is None
    assert ws.trailers(commit) == {"Autoresearch-Tag": "t", "Autoresearch-Iteration": "3"}
    assert ws.message(commit).startswith("an idea\n")
    assert ws.complexity(parent, commit, ["train.py", "new.py"]) == 3 - len(FAST_TRAIN.splitlines())  # added - removed
    assert not list(ws.common_dir.glob("autoresearch-*"))  # the temporary index is gone


def test_commit_tree_keeps_the_executable_bit(repo: Path):
    (repo / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(repo / "run.sh", 0o755)
    git(repo, "add", "run.sh")
    git(repo, "commit", "-q", "-m", "script")
    ws = Git(repo)
    commit = ws.commit_tree(ws.head(), {"run.sh": "#!/bin/sh\necho hi\n"}, "m")
    assert git(repo, "ls-tree", commit, "--", "run.sh").split()[0] == "100755"


def test_children_under_a_ref_prefix_are_the_commits_built_on_a_parent(repo: Path):
    """Deployed mode's window tells a proposer which ideas on its baseline are still training."""
    ws = Git(repo)
    base = ws.head()
    first = ws.commit_tree(base, {"train.py": "LR = 0.2\n"}, "experiment: LR 0.1 -> 0.2\n\nbody\n")
    later = ws.commit_tree(first, {"train.py": "LR = 0.3\n"}, "experiment: on top")
    for sha in (first, later):
        ws.keep_reachable(f"refs/autoresearch/t/{sha}", sha)
    assert ws.children_under("refs/autoresearch/t", base) == [(first, "experiment: LR 0.1 -> 0.2")]
    assert ws.children_under("refs/autoresearch/other", base) == []


def test_resolve_branches_and_reset(repo: Path):
    ws = Git(repo)
    head = ws.head()
    assert ws.resolve("HEAD") == head and ws.resolve("no-such-rev") is None and ws.parent(head) is None
    assert ws.current_branch() == "main" and ws.has_commits()
    ws.create_branch("autoresearch/t", head)
    assert ws.branch_exists("autoresearch/t") and not ws.branch_exists("autoresearch/u")
    ws.checkout("autoresearch/t")
    assert ws.current_branch() == "autoresearch/t"
    commit = ws.commit_tree(head, {"train.py": "LR = 0.3\n"}, "m")
    ws.reset_hard(commit)
    assert (repo / "train.py").read_text() == "LR = 0.3\n" and ws.dirty(["train.py"]) == []
    assert ws.is_tracked("train.py") and not ws.is_tracked("nope.py")


def test_a_failing_git_command_is_one_line(repo: Path):
    with pytest.raises(GitFailed) as failed:
        Git(repo).reset_hard("f" * 40)
    message = str(failed.value)
    assert "\n" not in message and message.startswith("git reset") and "f" * 40 in message


def test_a_fallback_identity_when_none_is_configured(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "empty-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    ws = Git(repo)
    commit = ws.commit_tree(ws.head(), {"train.py": "LR = 0.3\n"}, "m")
    assert git(repo, "log", "-1", "--format=%an <%ae>", commit) == "autoresearch <autoresearch@localhost>"


def test_not_a_repository_is_a_user_error(tmp_path: Path):
    from autoresearch.errors import UserError

    with pytest.raises(UserError, match="not a git repository"):
        Git(tmp_path)
