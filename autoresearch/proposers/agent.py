"""`--proposer agent --agent-command '...'`: a coding-agent CLI (claude -p, codex exec, aider ...) proposes.

The agent runs in a scratch worktree of the experiment repo (`.autoresearch/worktrees/agent-<slot>`, detached at
the baseline, or at the crashed commit for a fix): never in the user's working tree. It gets the prompt
on stdin and in the file named by $AUTORESEARCH_PROMPT_FILE, runs under a hard timeout that kills its
whole process group (autoresearch/runner.py), and its output goes to `.autoresearch/worktrees/agent-<slot>.log`.
Then git says what it changed (uncommitted or committed, new files included; ignored files such as a
.venv, and the agents' own scratch files (`.aider*`, excluded in the repo's .git/info/exclude), do not
count). Its description is the first line of $AUTORESEARCH_DESCRIPTION_FILE, else the subject of its own
commit when it committed, else the last line of its output that is not boilerplate (`Applied edit to ..`).
The agent runs without credentials in its environment, except those named in the config key `agent_env`;
its log is redacted. The changes become a Proposal whose edits replace each changed editable file whole,
so the usual edit and commit tasks apply it. A change to any other file, a timeout or a non-zero exit
after changing files is refused: the idea is logged as a crash row with the reason, and the scratch worktree
is reset next time. A non-zero exit that changed nothing (the agent's own API failed, say) is retried
within `proposer_patience_seconds` (autoresearch/patience.py). `check()` runs `PROGRAM --version` first.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from autoresearch import patience
from autoresearch.config import load_config
from autoresearch.errors import UserError
from autoresearch.gitops import Git
from autoresearch.models import FileEdit, Proposal, ProposalContext
from autoresearch.prompt import AGENT_ANSWER, MAX_DESCRIPTION, build_prompt
from autoresearch.proposers.base import Proposer
from autoresearch.runner import run_command
from autoresearch.secrets import redact, redact_file

DEFAULT_TIMEOUT = 900.0  # seconds for one agent run
TAIL_BYTES = 64 * 1024
SCRATCH_PATTERNS = (".aider*", ".claude/")  # agents' own files (chat history, caches): never an edit
BOILERPLATE = re.compile(
    r"^(Applied edit to |Commit [0-9a-f]{7,}\b|Tokens: |Cost: |Aider v|Main model:|Weak model:|Editor model:|Git repo:|"
    r"Repo-map:|Added .* to the chat|Model: |Warning|https?://|<<<<<<<|=======|>>>>>>>|```|> )"
)
CHECK_TIMEOUT = 30.0  # seconds for `PROGRAM --version`
CANNOT_RUN = (126, 127)  # the shell's "not executable" and "not found"


class AgentFailed(Exception):
    """The agent exited non-zero without changing anything: retried like a provider failure."""

    def __init__(self, exit_code: int, log: Path) -> None:
        self.exit_code, self.log = exit_code, log
        super().__init__(f"exit code {exit_code} without changes (see {log})")


class AgentProposer(Proposer):
    """Runs a coding agent in a scratch checkout and turns what it changed into a Proposal."""

    name = "agent"
    can_fix = True
    prefetch: ClassVar[bool] = False  # an agent's work is whole files: proposed ahead, a moved baseline wastes it

    def __init__(self, agent_command: str | None = None, agent_timeout: float | None = None, **options: Any) -> None:
        super().__init__(agent_command=agent_command, agent_timeout=agent_timeout, **options)
        if not agent_command or not agent_command.strip():
            raise UserError("--proposer agent needs --agent-command '...', e.g. --agent-command 'claude -p'")
        if agent_timeout is not None and agent_timeout <= 0:
            raise UserError("--agent-timeout must be a positive number of seconds")
        self.command = agent_command
        self.timeout = agent_timeout or DEFAULT_TIMEOUT
        self.patience = float(options.get("proposer_patience_seconds", patience.DEFAULT_PATIENCE))

    def check(self) -> None:
        """The agent's program exists and runs (`PROGRAM --version`), before the loop trains anything."""
        check_command(self.command)

    def propose(self, context: ProposalContext) -> Proposal:
        policy = patience.Policy(key=f"agent {self.command}", patience=self.patience, warn=patience.warn)
        return patience.patiently(lambda: self._propose_once(context), self._failure, policy)

    def _failure(self, exc: BaseException) -> patience.Failure | None:
        if isinstance(exc, AgentFailed):
            return patience.Failure("agent", self.command, f"exit code {exc.exit_code}, nothing changed (see {exc.log})")
        return None

    def _propose_once(self, context: ProposalContext) -> Proposal:
        if not context.repo or not context.scratch_dir:
            raise UserError("the agent proposer needs the experiment repo; run it through `autoresearch run`")
        git = Git(Path(context.repo))
        scratch = Path(context.scratch_dir)
        base = context.crash.commit if context.crash else context.baseline_commit
        git.checkout_worktree(scratch, base)
        Git(scratch).run("reset", "-q", "--hard", base)
        Git(scratch).run("clean", "-q", "-fd")  # leftovers of the last agent; ignored files (.venv) stay
        git.exclude(list(SCRATCH_PATTERNS))  # the repo's .git/info/exclude, shared by the scratch worktree
        config = load_config(git.root)  # env_drop and agent_env (autoresearch.toml or AUTORESEARCH_*)
        log = scratch.with_name(scratch.name + ".log")
        with tempfile.TemporaryDirectory(prefix="autoresearch-agent-") as tmp:
            prompt_file, description_file = Path(tmp) / "prompt.md", Path(tmp) / "description.txt"
            prompt_file.write_text(build_prompt(context, AGENT_ANSWER).text, encoding="utf-8")
            outcome = run_command(
                self.command,
                cwd=scratch,
                log_path=log,
                timeout=self.timeout,
                env={"AUTORESEARCH_PROMPT_FILE": str(prompt_file), "AUTORESEARCH_DESCRIPTION_FILE": str(description_file)},
                stdin=prompt_file,
                drop=config.env_drop,
                keep=config.agent_env,
            )
            redact_file(log)
            told = description_file.read_text(encoding="utf-8", errors="replace") if description_file.exists() else ""
        description, rationale = _description(redact(told), redact(_own_commit_subject(git, scratch, base)), log)
        edits, outside = _changes(git, scratch, base, context.editable_files)
        refused = None
        if outcome.timed_out:
            refused = f"the agent timed out after {self.timeout:g} s (process group killed)"
        elif outcome.exit_code and not edits and not outside:
            raise AgentFailed(outcome.exit_code, log)
        elif outcome.exit_code:
            refused = f"the agent exited with code {outcome.exit_code} (see {log})"
        elif outside:
            refused = f"the agent changed files outside the editable ones: {', '.join(outside)}"
        return Proposal(description=description, rationale=rationale, edits=edits, refused=refused)


def check_command(command: str) -> None:
    """One line if the command's program is missing or cannot be started."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise UserError(f"--agent-command {command!r}: {exc}; fix its quoting") from None
    program = next((w for w in words if "=" not in w.split("/")[0]), "")  # skip VAR=value prefixes
    if not program or shutil.which(program) is None:
        raise UserError(f"the agent program {program!r} was not found on PATH; install it or fix --agent-command")
    try:
        done = subprocess.run(
            [program, "--version"], capture_output=True, text=True, timeout=CHECK_TIMEOUT, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return
    except OSError as exc:
        raise UserError(f"the agent program {program!r} cannot be started ({exc.strerror}); fix --agent-command") from None
    if done.returncode in CANNOT_RUN:
        said = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise UserError(f"the agent program {program!r} cannot run ({said}); fix --agent-command or its installation")


def _changes(git: Git, scratch: Path, base: str, editable: dict[str, str]) -> tuple[list[FileEdit], list[str]]:
    """Edits (whole-file replacements) of the changed editable files, and the other paths it changed."""
    Git(scratch).run("add", "-A")  # the scratch worktree's own index; catches new files and commits too
    changed = [path for path in Git(scratch).run("diff", "--cached", "--name-only", "--no-renames", base).splitlines() if path]
    edits = []
    for path in sorted(set(changed) & set(editable)):
        new = scratch / path
        text = new.read_text(encoding="utf-8", errors="replace") if new.is_file() else ""
        edits.append(FileEdit(path=path, search=editable[path], replace=text))
    return edits, sorted(set(changed) - set(editable))


def _own_commit_subject(git: Git, scratch: Path, base: str) -> str:
    """The subject of the agent's last commit (aider commits by itself), or "" when it did not commit."""
    head = Git(scratch).run("rev-parse", "HEAD").strip()
    if head == base:
        return ""
    return Git(scratch).run("log", "-1", "--format=%s").strip()


def _description(told: str, subject: str, log: Path) -> tuple[str, str]:
    """(description, rationale): the description file's first line and the rest, else the agent's commit
    subject, else the last line of its output that is not boilerplate."""
    lines = [line.strip() for line in told.splitlines() if line.strip()]
    if not lines:
        lines = [subject or _last_line(log)]
    first = " ".join(lines[0].replace("\t", " ").split())[:MAX_DESCRIPTION] or "agent: (no description)"
    return first, "\n".join(lines[1:])


def _last_line(log: Path) -> str:
    """The last line of the agent's output that says something: no boilerplate, code or file name."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, os.path.getsize(log) - TAIL_BYTES))
            tail = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    said, in_code = [], False
    for raw in tail.replace("\r", "\n").splitlines():
        line = raw.strip()
        if line.startswith("```"):
            in_code = not in_code
            continue
        if line and not in_code and not BOILERPLATE.match(line) and not re.fullmatch(r"[\w./-]+\.\w+", line):
            said.append(line)
    return said[-1] if said else ""
