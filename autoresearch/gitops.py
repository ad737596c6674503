"""Git operations of the loop, through GitPython. Plumbing where it must not touch the user's index or working tree."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import git

from autoresearch.errors import UserError

TRAILER_TAG = "Autoresearch-Tag"
TRAILER_ITERATION = "Autoresearch-Iteration"
FALLBACK_IDENTITY = {"user.name": "autoresearch", "user.email": "autoresearch@localhost"}
IDENTITY_ENV = {
    "user.name": ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"),
    "user.email": ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"),
}
DEFAULT_MODE = "100644"


class GitFailed(RuntimeError):
    """A git command failed; the message is one line: the command and what git said."""


@contextmanager
def failing_as_one_line() -> Iterator[None]:
    """GitPython's multi-line GitCommandError as a one-line GitFailed."""
    try:
        yield
    except git.GitCommandError as exc:
        command = " ".join(str(part) for part in exc.command) if isinstance(exc.command, list | tuple) else str(exc.command)
        said = " ".join(str(exc.stderr or exc.stdout or "").split()).removeprefix("stderr:").strip(" '")
        raise GitFailed(f"{command} failed: {said or f'exit code {exc.status}'}") from None


class Git:
    """A thin, typed wrapper around one repository's GitPython `Repo`."""

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
        self.identity = self._fallback_identity()
        repo.git.update_environment(**self.identity)

    @staticmethod
    def init(path: Path) -> None:
        git.Repo.init(path).close()

    def _fallback_identity(self) -> dict[str, str]:
        """Author/committer variables for the identity keys that neither git config nor the environment sets."""
        env: dict[str, str] = {}
        for key, value in FALLBACK_IDENTITY.items():
            if not self.ok("config", "--get", key):  # git's own lookup: system, global, repo, GIT_CONFIG_*
                env.update({name: value for name in IDENTITY_ENV[key] if name not in os.environ})
        return env

    def run(self, *args: str) -> str:
        """`git <args>` in this repository; its stdout. Raises GitFailed."""
        with failing_as_one_line():
            return self.repo.git.execute([self.repo.git.GIT_PYTHON_GIT_EXECUTABLE, *args]).rstrip("\n")

    def ok(self, *args: str) -> bool:
        try:
            self.run(*args)
        except GitFailed:
            return False
        return True

    # --- reading ---------------------------------------------------------------------------------
    def has_commits(self) -> bool:
        return self.repo.head.is_valid()

    def head(self) -> str:
        with failing_as_one_line():
            return self.repo.git.rev_parse("HEAD")

    def resolve(self, rev: str) -> str | None:
        try:
            return self.repo.git.rev_parse("--verify", "-q", f"{rev}^{{commit}}")
        except git.GitCommandError:
            return None

    def current_branch(self) -> str | None:
        return None if self.repo.head.is_detached else self.repo.head.reference.name

    def branch_exists(self, branch: str) -> bool:
        return self.ok("show-ref", "--verify", "-q", f"refs/heads/{branch}")

    def is_tracked(self, path: str) -> bool:
        return self.ok("ls-files", "--error-unmatch", "--", path)

    def dirty(self, paths: list[str]) -> list[str]:
        """Paths among `paths` whose working-tree or index content differs from HEAD."""
        with failing_as_one_line():
            out = self.repo.git.status("--porcelain", "--untracked-files=no", "--", *paths)
        return [line[3:] for line in out.splitlines() if line.strip()]

    def show(self, commit: str, path: str) -> str | None:
        """The file at `path` in `commit`, or None where either does not exist."""
        try:
            blob = self.repo.commit(commit).tree / path
        except (KeyError, ValueError, git.BadName):
            return None
        return blob.data_stream.read().decode("utf-8", errors="replace")

    def parent(self, commit: str) -> str | None:
        return self.resolve(f"{commit}^")

    def message(self, commit: str) -> str:
        with failing_as_one_line():
            return self.repo.git.log("-1", "--format=%B", commit).rstrip("\n")

    def children_under(self, prefix: str, parent: str) -> list[tuple[str, str]]:
        """(hash, subject) of the commits that refs under `prefix` name and whose first parent is `parent`."""
        with failing_as_one_line():
            out = self.repo.git.for_each_ref("--format=%(objectname) %(parent) %(subject)", prefix)
        fields = (line.split(" ", 2) for line in out.splitlines())
        return [(sha, rest[1] if len(rest) > 1 else "") for sha, *rest in fields if rest and rest[0] == parent]

    def trailers(self, commit: str) -> dict[str, str]:
        with failing_as_one_line():
            out = self.repo.git.log("-1", "--format=%(trailers:only,unfold)", commit)
        pairs = (line.split(":", 1) for line in out.splitlines() if ":" in line)
        return {key.strip(): value.strip() for key, value in pairs}

    def complexity(self, parent: str, commit: str, paths: list[str]) -> int:
        """Lines added minus lines removed in `paths` (git numstat)."""
        with failing_as_one_line():
            out = self.repo.git.diff("--numstat", parent, commit, "--", *paths)
        total = 0
        for line in out.splitlines():
            added, removed, _ = line.split("\t", 2)
            if added != "-":
                total += int(added) - int(removed)
        return total

    def diff(self, parent: str, commit: str, paths: list[str]) -> str:
        with failing_as_one_line():
            return self.repo.git.diff(parent, commit, "--", *paths)

    # --- writing ---------------------------------------------------------------------------------
    def commit_tree(self, parent: str, files: dict[str, str], message: str) -> str:
        """A commit of `parent` with `files` replaced, made without touching the index or working tree."""
        plumbing = self.repo.git
        with tempfile.TemporaryDirectory(dir=self.common_dir, prefix="autoresearch-") as scratch, failing_as_one_line():
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            plumbing.read_tree(parent, env=env)
            for number, (path, content) in enumerate(sorted(files.items())):
                source = Path(scratch) / f"blob-{number}"
                source.write_bytes(content.encode("utf-8"))
                blob = plumbing.hash_object("-w", "--path", path, str(source))
                plumbing.update_index("--add", "--cacheinfo", f"{self._mode(parent, path)},{blob},{path}", env=env)
            tree = plumbing.write_tree(env=env)
            (Path(scratch) / "message").write_bytes(message.encode("utf-8"))
            return plumbing.commit_tree(tree, "-p", parent, "-F", str(Path(scratch) / "message"))

    def _mode(self, commit: str, path: str) -> str:
        out = self.repo.git.ls_tree(commit, "--", path)
        return out.split()[0] if out else DEFAULT_MODE

    def reset_hard(self, commit: str) -> None:
        with failing_as_one_line():
            self.repo.git.reset("--hard", "-q", commit)

    def keep_reachable(self, ref: str, commit: str) -> None:
        with failing_as_one_line():
            self.repo.git.update_ref(ref, commit)

    def create_branch(self, branch: str, start: str) -> None:
        with failing_as_one_line():
            self.repo.create_head(branch, start)

    def checkout(self, branch: str) -> None:
        with failing_as_one_line():
            self.repo.git.checkout("-q", branch)

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
        with failing_as_one_line():
            if (path / ".git").exists():
                git.Repo(path).git.checkout("-q", "--detach", "--force", commit)
                return
            self.repo.git.worktree("prune")
            path.parent.mkdir(parents=True, exist_ok=True)
            self.repo.git.worktree("add", "-q", "--detach", "--force", str(path), commit)


def short(commit: str) -> str:
    return commit[:7]
