"""Git operations of the loop. Plumbing where it must not touch the user's index or working tree."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import git

from autoresearch.errors import UserError

TRAILER_TAG = "Autoresearch-Tag"
TRAILER_ITERATION = "Autoresearch-Iteration"
FALLBACK_IDENTITY = {"user.name": "autoresearch", "user.email": "autoresearch@localhost"}


class Git:
    """A thin, typed wrapper around the git CLI for one repository (GitPython finds and validates it)."""

    def __init__(self, path: Path) -> None:
        try:
            repo = git.Repo(path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UserError(f"{path} is not a git repository; run `git init` there or pass --repo DIR") from None
        if repo.bare:
            raise UserError(f"{path} is a bare repository; pass --repo a checkout")
        self.repo = repo
        self.root = Path(repo.working_tree_dir).resolve()
        self.common_dir = Path(repo.common_dir).resolve()
        self._identity = [
            arg for key, value in FALLBACK_IDENTITY.items() if not self._configured(key) for arg in ("-c", f"{key}={value}")
        ]

    @staticmethod
    def init(path: Path) -> None:
        subprocess.run(["git", "init", "-q", str(path)], check=True, capture_output=True)

    def _configured(self, key: str) -> bool:
        return subprocess.run(["git", "config", key], cwd=self.root, capture_output=True).returncode == 0

    def run(self, *args: str, cwd: Path | None = None, input: str | None = None, env: dict | None = None) -> str:
        result = subprocess.run(
            ["git", *self._identity, *args],
            cwd=cwd or self.root,
            input=input,
            capture_output=True,
            text=True,
            env={**os.environ, **(env or {})},
        )
        if result.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip() or result.stdout.strip()}")
        return result.stdout.rstrip("\n")

    def ok(self, *args: str) -> bool:
        return subprocess.run(["git", *args], cwd=self.root, capture_output=True).returncode == 0

    # --- reading ---------------------------------------------------------------------------------
    def has_commits(self) -> bool:
        return self.ok("rev-parse", "--verify", "-q", "HEAD^{commit}")

    def head(self) -> str:
        return self.run("rev-parse", "HEAD")

    def resolve(self, rev: str) -> str | None:
        result = subprocess.run(
            ["git", "rev-parse", "--verify", "-q", f"{rev}^{{commit}}"], cwd=self.root, capture_output=True, text=True
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def current_branch(self) -> str | None:
        result = subprocess.run(["git", "symbolic-ref", "-q", "--short", "HEAD"], cwd=self.root, capture_output=True, text=True)
        return result.stdout.strip() or None

    def branch_exists(self, branch: str) -> bool:
        return self.ok("show-ref", "--verify", "-q", f"refs/heads/{branch}")

    def is_tracked(self, path: str) -> bool:
        return self.ok("ls-files", "--error-unmatch", "--", path)

    def dirty(self, paths: list[str]) -> list[str]:
        """Paths among `paths` whose working-tree or index content differs from HEAD."""
        out = self.run("status", "--porcelain", "--untracked-files=no", "--", *paths)
        return [line[3:] for line in out.splitlines() if line.strip()]

    def show(self, commit: str, path: str) -> str | None:
        result = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=self.root, capture_output=True)
        return result.stdout.decode("utf-8", errors="replace") if result.returncode == 0 else None

    def parent(self, commit: str) -> str | None:
        return self.resolve(f"{commit}^")

    def message(self, commit: str) -> str:
        return self.run("log", "-1", "--format=%B", commit)

    def trailers(self, commit: str) -> dict[str, str]:
        out = self.run("log", "-1", "--format=%(trailers:only,unfold)", commit)
        pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
        return {key.strip(): value.strip() for key, value in pairs}

    def complexity(self, parent: str, commit: str, paths: list[str]) -> int:
        """Lines added minus lines removed in `paths` (git numstat)."""
        total = 0
        for line in self.run("diff", "--numstat", parent, commit, "--", *paths).splitlines():
            added, removed, _ = line.split("\t", 2)
            if added != "-":
                total += int(added) - int(removed)
        return total

    def diff(self, parent: str, commit: str, paths: list[str]) -> str:
        return self.run("diff", parent, commit, "--", *paths)

    # --- writing ---------------------------------------------------------------------------------
    def commit_tree(self, parent: str, files: dict[str, str], message: str) -> str:
        """A commit of `parent` with `files` replaced, made without touching the index or working tree."""
        index = self.common_dir / f"autoresearch-index-{os.getpid()}"
        env = {"GIT_INDEX_FILE": str(index)}
        try:
            self.run("read-tree", parent, env=env)
            for path, content in sorted(files.items()):
                blob = self.run("hash-object", "-w", "--stdin", "--path", path, input=content)
                mode = self._mode(parent, path)
                self.run("update-index", "--add", "--cacheinfo", f"{mode},{blob},{path}", env=env)
            tree = self.run("write-tree", env=env)
        finally:
            index.unlink(missing_ok=True)
        return self.run("commit-tree", tree, "-p", parent, "-F", "-", input=message)

    def _mode(self, commit: str, path: str) -> str:
        out = self.run("ls-tree", commit, "--", path)
        return out.split()[0] if out else "100644"

    def reset_hard(self, commit: str) -> None:
        self.run("reset", "--hard", "-q", commit)

    def keep_reachable(self, ref: str, commit: str) -> None:
        self.run("update-ref", ref, commit)

    def create_branch(self, branch: str, start: str) -> None:
        self.run("branch", branch, start)

    def checkout(self, branch: str) -> None:
        self.run("checkout", "-q", branch)

    def exclude(self, patterns: list[str]) -> None:
        """Add patterns to .git/info/exclude (shared by all worktrees), once each."""
        path = self.common_dir / "info" / "exclude"
        path.parent.mkdir(parents=True, exist_ok=True)
        existing = path.read_text().splitlines() if path.exists() else []
        missing = [pattern for pattern in patterns if pattern not in existing]
        if missing:
            with open(path, "a") as handle:
                if existing and existing[-1] != "":
                    handle.write("\n")
                handle.write("# autoresearch\n" + "\n".join(missing) + "\n")

    def checkout_worktree(self, path: Path, commit: str) -> None:
        """A persistent detached worktree at `commit`; untracked files (.venv, caches) survive the move."""
        if (path / ".git").exists():
            self.run("checkout", "-q", "--detach", "--force", commit, cwd=path)
            return
        self.run("worktree", "prune")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.run("worktree", "add", "-q", "--detach", "--force", str(path), commit)


def short(commit: str) -> str:
    return commit[:7]
