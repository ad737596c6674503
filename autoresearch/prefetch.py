"""Propose the next idea while the current one trains, so a slow proposer (an LLM, a coding agent) does
not leave the GPU idle between runs.

The next proposal is asked for against the current baseline, with the experiment in flight shown in
the history as a row whose reason is "still training" (so it is not proposed twice). When the next
iteration starts from the same baseline, the proposal is used as it is; when the baseline moved (the
experiment in flight was kept), it is used only if its edits still apply to the new baseline (rebased),
else the proposer is asked again. One prefetch per process at a time; a failed prefetch is dropped and
the proposer is simply asked again (so its error surfaces where it always does).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from autoresearch.edits import apply_edits
from autoresearch.models import Proposal

STILL_TRAINING = "still training: its result is not known yet (this idea is running now)"


@dataclass(frozen=True)
class PrefetchKey:
    loop_id: str
    iteration: int
    proposer: str
    options: str  # the proposer's options, as sorted JSON


@dataclass
class _Job:
    key: PrefetchKey
    baseline_commit: str
    future: Future


class Prefetcher:
    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="autoresearch-prefetch")
        self._lock = threading.Lock()
        self._job: _Job | None = None

    def start(self, key: PrefetchKey, baseline_commit: str, propose: Callable[[], Proposal]) -> None:
        with self._lock:
            self._job = _Job(key, baseline_commit, self._executor.submit(propose))

    def take(self, key: PrefetchKey) -> tuple[str, Proposal] | None:
        """The prefetched (baseline commit, proposal) for `key`, waiting for it if it is still running."""
        with self._lock:
            job, self._job = self._job, None
        if job is None or job.key != key:
            return None
        try:
            return job.baseline_commit, job.future.result()
        except Exception:
            return None


def rebase(proposal: Proposal, proposed_on: str, files_now: dict[str, str], baseline_now: str) -> Proposal | None:
    """The proposal for a baseline that moved since it was made: usable if its edits still apply."""
    if proposed_on == baseline_now:
        return proposal
    if apply_edits(files_now, proposal.edits).refused is not None:
        return None
    note = f"(Proposed while {baseline_now[:7]} trained, against {proposed_on[:7]}; its edits apply unchanged to {baseline_now[:7]}.)"
    return proposal.model_copy(update={"rationale": f"{proposal.rationale} {note}".strip()})


PREFETCHER = Prefetcher()
