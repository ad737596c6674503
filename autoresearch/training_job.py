"""One training run of one experiment commit, wherever it runs: in the loop's process (local mode) or in
a `train-on-gpu` flow run on a GPU worker (deployed mode). No Prefect here, except that the training's
progress is published as an artifact when the job runs inside a Prefect run (autoresearch.progress).

The job checks out the commit in the slot's persistent worktree (of the experiment repo itself, or of
the worker's own clone when the repo arrives as a git URL), verifies the read-only files, runs the
command with all output to run.log under a hard timeout that kills the whole process group, and
archives the log under .autoresearch/logs/<tag>/.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from pydantic import BaseModel

from autoresearch.errors import UserError
from autoresearch.gitops import Git, GitFailed
from autoresearch.progress import training_progress
from autoresearch.runner import RunOutcome, kill_recorded, run_command
from autoresearch.secrets import known_secrets, redact_file
from autoresearch.slot_turn import SlotTurn, home
from autoresearch.workspace import log_path, verify_checksums, worktree_path

RUN_LOG = "run.log"
LOG_TEXT_LIMIT = 1 << 20  # bytes of log tail that travel back when the log stays on another machine
SLOT_ENV = "AUTORESEARCH_SLOT"  # set by `autoresearch worker` for each GPU slot


class TrainRequest(BaseModel):
    """What a training slot needs: the commit, where to get it, how to run it, what must not change."""

    repo: str  # the experiment repo's path on the loop's machine (used when `remote` is None)
    remote: str | None = None  # a git URL the worker fetches `ref` from instead
    tag: str
    iteration: int
    commit: str
    command: str  # `{python}` expands to the interpreter of the process that runs the job
    timeout_seconds: float
    env: dict[str, str] = {}  # added to the environment, which has no credentials (autoresearch.secrets)
    env_drop: list[str] = []  # more variables to keep out of the training (config key env_drop)
    readonly: dict[str, str] = {}  # path -> sha256 recorded at setup
    run: int = 0  # > 0: a repeat of the same commit (--confirm), logged next to the first

    @property
    def ref(self) -> str:
        return f"refs/autoresearch/{self.tag}/{self.commit}"


class TrainReport(BaseModel):
    exit_code: int | None
    timed_out: bool
    seconds: float
    started_at: float  # unix time, for utilisation and overlap measurements
    ended_at: float
    waited_seconds: float = 0.0  # for the slot, after the run was ready (deployed mode's hand-over)
    log_path: str  # on the machine that ran it
    log_text: str | None = None  # the log's tail, when that machine does not share the repo's filesystem
    host: str
    slot: int


def current_slot(default: int = 0) -> int:
    value = os.environ.get(SLOT_ENV, "")
    return int(value) if value.isdigit() else default


def run_training_job(request: TrainRequest, slot: int, record: Path | None = None, turn: SlotTurn | None = None) -> TrainReport:
    """Local mode trains in the loop's process (`turn` None: the loop never trains twice at once). A GPU
    worker passes its slot's SlotTurn: the checkout happens in this run's own seat while the slot may still
    be training, and the training starts when the slot is free (autoresearch/slot_turn.py)."""
    with turn.seat() if turn else nullcontext(0) as seat:
        git = _clone_for(request) if request.remote else Git(Path(request.repo))
        checkout = worktree_path(git.root, slot, seat)
        git.checkout_worktree(checkout, request.commit)
        verify_checksums(checkout, request.readonly, f"autoresearch/{request.tag}")
        record = record or git.common_dir / "autoresearch" / f"training-slot-{slot}.json"
        with turn.training(request.timeout_seconds) if turn else nullcontext(0.0) as waited:
            kill_recorded(record)  # a training left behind by a run that died on this slot: never two per GPU
            started_at = time.time()
            outcome = _train(request, git.root, checkout, record)
            ended_at = time.time()
        archived = _archive(request, git.root, checkout / RUN_LOG)
    return TrainReport(
        exit_code=outcome.exit_code,
        timed_out=outcome.timed_out,
        seconds=outcome.seconds,
        started_at=started_at,
        ended_at=ended_at,
        waited_seconds=waited,
        log_path=str(archived),
        log_text=_tail(archived, LOG_TEXT_LIMIT) if request.remote else None,
        host=socket.gethostname(),
        slot=slot,
    )


def _train(request: TrainRequest, root: Path, checkout: Path, record: Path) -> RunOutcome:
    live_log = checkout / RUN_LOG
    if not request.remote:
        _link(root / RUN_LOG, live_log)
    budget = float(request.env.get("AUTORESEARCH_TIME_BUDGET") or 0) or None
    with training_progress(live_log, budget, request.tag, request.iteration, request.commit):  # progress artifact (in a run)
        return run_command(
            request.command.replace("{python}", sys.executable),
            cwd=checkout,
            log_path=live_log,
            timeout=request.timeout_seconds,
            env=request.env,
            record=record,
            drop=request.env_drop,
        )


def _archive(request: TrainRequest, root: Path, live_log: Path) -> Path:
    """run.log moves to .autoresearch/logs/<tag>/, with every known secret value redacted."""
    archived = log_path(root, request.tag, request.iteration, request.commit, request.run)
    archived.parent.mkdir(parents=True, exist_ok=True)
    os.replace(live_log, archived)
    redact_file(archived, known_secrets(drop=request.env_drop))  # whatever it printed: no known secret is stored
    if not request.remote:
        _link(root / RUN_LOG, archived)
    return archived


def _clone_for(request: TrainRequest) -> Git:
    """The worker's own clone of a remote experiment repo, with the experiment commit fetched into it."""
    assert request.remote
    clone = home() / "clones" / hashlib.sha1(request.remote.encode()).hexdigest()[:16]
    if not (clone / ".git").exists():
        clone.mkdir(parents=True, exist_ok=True)
        Git.init(clone)
    git = Git(clone)
    try:
        git.run("fetch", "-q", "--no-tags", request.remote, f"+{request.ref}:{request.ref}")
    except GitFailed as exc:
        raise UserError(f"could not fetch {request.ref} from {request.remote}: {exc}") from None
    return git


def _tail(path: Path, limit: int) -> str:
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - limit))
        return handle.read().decode("utf-8", errors="replace")


def _link(link: Path, target: Path) -> None:
    """`tail -f run.log` in the repo root keeps working, as in karpathy's setup (never over a real file).

    Several trainings of one repo (slots, and a slot's next run) move it at once: the new link is made
    under a name of this thread's and renamed over the old one, which is atomic; a convenience, it never
    fails a training."""
    if link.exists() and not link.is_symlink():
        return
    temp = link.with_name(f".{link.name}.{os.getpid()}.{threading.get_ident()}")
    try:
        temp.unlink(missing_ok=True)
        temp.symlink_to(target)
        os.replace(temp, link)
    except OSError:
        temp.unlink(missing_ok=True)
