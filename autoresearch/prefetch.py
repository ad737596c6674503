"""Propose the next idea while the current one trains, so a slow proposer (an LLM, a coding agent) does
not leave the GPU idle between runs.

The next proposal is asked for against the current baseline, with the experiment in flight shown in
the history as a row whose reason is "still training" (so it is not proposed twice). When the next
iteration starts from the same baseline, the proposal is used as it is; when the baseline moved (the
experiment in flight was kept), it is used only if its edits still apply to the new baseline (rebased),
else the proposer is asked again.

Lifecycle: no prefetch for an iteration that will not run (the last of --iterations, or one that would
start after --stop-after); one prefetch at a time, in a daemon thread, so a hanging request never keeps
the process alive after the loop ends or is interrupted; `cancel()` drops it (its retry waits end at
once). A failed prefetch is logged in one line, its usage is still counted, and the idea is asked again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from autoresearch import patience
from autoresearch.edits import apply_edits
from autoresearch.models import Proposal, Usage

STILL_TRAINING = "still training: its result is not known yet (this idea is running now)"
LOGGER = logging.getLogger("prefect.autoresearch.prefetch")


@dataclass(frozen=True)
class PrefetchKey:
    loop_id: str
    iteration: int
    proposer: str
    options: str  # the proposer's options, as sorted JSON


@dataclass(frozen=True)
class Taken:
    """What a prefetch gave: a proposal, or the failure (one line) and the usage it spent anyway."""

    baseline_commit: str
    proposal: Proposal | None
    failure: str | None = None
    usage: Usage | None = None


@dataclass
class _Job:
    key: PrefetchKey
    baseline_commit: str
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    proposal: Proposal | None = None
    error: BaseException | None = None


class Prefetcher:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._job: _Job | None = None

    def start(self, key: PrefetchKey, baseline_commit: str, propose: Callable[[], Proposal]) -> None:
        job = _Job(key, baseline_commit)
        with self._lock:
            old, self._job = self._job, job
        if old is not None:
            old.cancel.set()
        threading.Thread(target=_run, args=(job, propose), name="autoresearch-prefetch", daemon=True).start()

    def take(self, key: PrefetchKey) -> Taken | None:
        """The prefetch for `key`, waiting for it if it is still running; None if there is none for it."""
        with self._lock:
            job, self._job = self._job, None
        if job is None:
            return None
        if job.key != key:
            job.cancel.set()
            return None
        job.done.wait()
        if job.error is None:
            return Taken(job.baseline_commit, job.proposal)
        failure = _first_line(job.error)
        LOGGER.warning("the prefetched proposal for iteration %d failed (%s); asking for it again", key.iteration, failure)
        return Taken(job.baseline_commit, None, failure, getattr(job.error, "usage", None))

    def cancel(self) -> None:
        """Drop the prefetch in flight, if any: the loop ended. Its thread is a daemon; its waits end now."""
        with self._lock:
            job, self._job = self._job, None
        if job is not None:
            job.cancel.set()


def _run(job: _Job, propose: Callable[[], Proposal]) -> None:
    patience.cancellable(job.cancel)
    try:
        job.proposal = propose()
    except BaseException as exc:  # reported by take(), in the loop's thread
        job.error = exc
    finally:
        job.done.set()


def worth_prefetching(
    iterations: int | None, done_after: int, stop_at: float | None, now: float, expected_seconds: float
) -> bool:
    """Whether an iteration will follow the one about to train: not past --iterations, nor --stop-after
    (judged by when this training should end: now + the last training's length)."""
    if iterations is not None and done_after >= iterations:
        return False
    return stop_at is None or now + expected_seconds < stop_at


def rebase(proposal: Proposal, proposed_on: str, files_now: dict[str, str], baseline_now: str) -> Proposal | None:
    """The proposal for a baseline that moved since it was made: usable if its edits still apply."""
    if proposed_on == baseline_now:
        return proposal
    if apply_edits(files_now, proposal.edits).refused is not None:
        return None
    note = f"(Proposed while {baseline_now[:7]} trained, against {proposed_on[:7]}; its edits apply unchanged to {baseline_now[:7]}.)"
    return proposal.model_copy(update={"rationale": f"{proposal.rationale} {note}".strip()})


def usable(taken: Taken, files_now: dict[str, str], baseline_now: str) -> tuple[Proposal | None, Usage | None]:
    """(the proposal to use, if any; the usage spent on a prefetch that is not used, if any)."""
    if taken.proposal is None:
        return None, taken.usage
    proposal = rebase(taken.proposal, taken.baseline_commit, files_now, baseline_now)
    return proposal, taken.proposal.usage if proposal is None else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


PREFETCHER = Prefetcher()
