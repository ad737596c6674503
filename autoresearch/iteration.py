"""What one iteration is, and what the loop runs next.

An iteration is one of five kinds, each a model of its own (so an illegal mix cannot be built):
- `Baseline`: the unmodified code, run while the loop has no kept result yet;
- `Idea`: a new idea from the proposer, built on the last keep (deployed: the keep when it started);
- `Fix`: a proposer with `can_fix` repairs an experiment that crashed (at most MAX_FIX_ATTEMPTS in a row);
- `NoiseRepeat`: the unmodified baseline trained again right after it, to measure noise (noise.py);
- `Resumed`: an experiment committed by an interrupted attempt, finished instead of a new one.

`next_step` is local mode's rule for what runs next, a pure function of `LoopState` and the last outcome;
`next_candidate` is deployed mode's (a window of candidates in flight, see docs/deployed.md), built on the
same choice of kind.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from autoresearch import noise
from autoresearch.models import Decision, LedgerRow, Metrics, Proposal
from autoresearch.workspace import Workspace

MAX_FIX_ATTEMPTS = 2
EXPERIMENT_PREFIX = "experiment: "


class CrashInfo(BaseModel):
    """A crashed experiment that the next iteration tries to fix."""

    commit: str  # full hash of the crashed experiment commit: the fix's parent
    iteration: int  # its row, and its run.log under .autoresearch/logs/
    description: str  # the idea being fixed
    reason: str  # why it crashed
    attempt: int  # 1 .. MAX_FIX_ATTEMPTS
    baseline_commit: str | None = None  # deployed: the baseline the crashed candidate started from
    baseline_value: float | None = None


class Baseline(BaseModel):
    kind: Literal["baseline"] = "baseline"


class Idea(BaseModel):
    kind: Literal["idea"] = "idea"


class Fix(BaseModel):
    kind: Literal["fix"] = "fix"
    crash: CrashInfo


class NoiseRepeat(BaseModel):
    kind: Literal["noise_repeat"] = "noise_repeat"
    number: int  # 1 .. noise_repeats


class Resumed(BaseModel):
    kind: Literal["resumed"] = "resumed"
    commit: str  # the experiment commit left by the interrupted attempt
    repeat: int | None = None  # the noise repeat it was, if it was one


Kind = Annotated[Baseline | Idea | Fix | NoiseRepeat | Resumed, Field(discriminator="kind")]


class LoopContext(BaseModel):
    """What every iteration of one loop shares: where it works and how it is configured."""

    repo: str
    tag: str
    loop_id: str
    overrides: dict[str, Any] = {}
    proposer: str = "mutate"
    proposer_options: dict[str, Any] = {}  # --model, --agent-command, ... (JSON values; part of the cache key)
    time_budget: int | None = None
    deployed: bool = False  # train on the gpu work pool (train-on-gpu runs) instead of in this process
    remote: str | None = None  # git URL that GPU workers fetch experiment commits from (default: the repo's path)
    prefetch: bool = True  # local mode: propose the next idea while this one trains
    confirm: bool = False  # re-train a would-be keep once; keep only if both runs pass
    slot: int = 0  # local mode's training slot (deployed: the GPU worker's own)

    def workspace(self) -> Workspace:
        return _workspace(self.repo, self.tag, json.dumps(self.overrides, sort_keys=True))


@lru_cache(maxsize=8)
def _workspace(repo: str, tag: str, overrides: str) -> Workspace:
    return Workspace(repo, tag, json.loads(overrides))


class Iteration(BaseModel):
    """One iteration: its number, the baseline it is judged against, and its kind."""

    loop: LoopContext
    iteration: int  # its row number in results.tsv
    baseline_commit: str
    baseline_value: float | None = None  # None exactly for the Baseline kind
    sigma: float | None = None  # measured baseline noise: keeps need max(small_gain, 2 sigma)
    candidate: bool = False  # deployed mode's window: off the branch until the loop judges and logs it
    kind: Kind = Idea()

    @model_validator(mode="after")
    def _legal(self) -> Iteration:
        if (self.baseline_value is None) != isinstance(self.kind, Baseline):
            raise ValueError("a baseline value is known for every kind but the baseline run")
        if self.candidate and not isinstance(self.kind, Idea | Fix):
            raise ValueError("only new ideas and fixes run as candidates of the window")
        return self

    @property
    def parent_commit(self) -> str:
        """What this iteration's commit builds on: the crashed commit for a fix, else the baseline."""
        return self.kind.crash.commit if isinstance(self.kind, Fix) else self.baseline_commit

    @property
    def edits_code(self) -> bool:
        """The proposer's edits make this commit (a new idea or a fix); other kinds reuse code as it is."""
        return isinstance(self.kind, Idea | Fix)

    @property
    def repeat(self) -> int | None:
        """The noise repeat number, for a repeat (new or resumed)."""
        return self.kind.number if isinstance(self.kind, NoiseRepeat) else getattr(self.kind, "repeat", None)

    @property
    def given_commit(self) -> str | None:
        """The commit this iteration trains without making one: the baseline's, or the resumed one."""
        if isinstance(self.kind, Baseline):
            return self.baseline_commit
        return self.kind.commit if isinstance(self.kind, Resumed) else None

    @property
    def counts(self) -> bool:
        """Counts toward --iterations: a new idea, or a resumed one."""
        return isinstance(self.kind, Idea) or (isinstance(self.kind, Resumed) and self.kind.repeat is None)

    def workspace(self) -> Workspace:
        return self.loop.workspace()


def preset_proposal(it: Iteration, resumed_subject: str = "") -> Proposal | None:
    """The proposal of a kind that needs no proposer (None: ask the proposer)."""
    kind = it.kind
    if isinstance(kind, Resumed):
        description = resumed_subject.removeprefix(EXPERIMENT_PREFIX)
        return Proposal(description=description, rationale="resumed after an interruption")
    if isinstance(kind, Baseline):
        return Proposal(description="baseline", rationale="the unmodified code, to compare against")
    if isinstance(kind, NoiseRepeat):
        return Proposal(
            description=noise.repeat_description(kind.number),
            rationale="the unmodified baseline trained again, to measure run-to-run noise",
        )
    return None


def resumed(commit: str, subject: str) -> Resumed:
    """The in-flight commit found at resume, with the noise repeat it was (read from its subject)."""
    return Resumed(commit=commit, repeat=noise.repeat_number(subject.removeprefix(EXPERIMENT_PREFIX)))


class IterationOutcome(BaseModel):
    """What an iteration hands back to the loop. A window's candidate has no row yet: the loop logs it."""

    iteration: int
    commit: str  # the experiment commit (full hash)
    proposal: Proposal  # without its edits (the commit holds them)
    verdict: Decision
    metrics: Metrics | None = None
    trained: bool = False  # a training ran (its run.log exists): a crash can be fixed from it
    training_seconds: float = 0.0
    row: LedgerRow | None = None  # None for a window's candidate until the loop logs it
    baseline_commit: str  # after this iteration: the commit the next one starts from
    baseline_value: float | None


class LoopState(BaseModel):
    """Where the loop stands between iterations (deployed: with the candidates it has in flight)."""

    next_iteration: int  # rows in results.tsv
    baseline_commit: str
    baseline_value: float | None
    rows: list[LedgerRow] = []
    noise_repeats: int = 0
    can_fix: bool = False  # the proposer can repair crashes
    in_flight: Resumed | None = None  # only until it is trained again (the first iteration after a resume)
    done: int = 0  # iterations that count toward --iterations
    iterations: int | None = None
    parallel: int = 1  # GPU slots (deployed mode)
    out_of_time: bool = False  # --stop-after has passed
    running: int = 0  # deployed: iterations started and not yet logged
    measured: int = 0  # deployed: of those, the ones whose run has ended (waiting for their turn to be logged)
    alone: bool = False  # deployed: the one in flight is a baseline, resumed commit or noise repeat
    fixes: list[CrashInfo] = []  # deployed: crashed candidates whose fix starts next

    @property
    def window(self) -> int:
        """Deployed: candidates in flight at once, one training per slot and the next one queued behind it."""
        return 2 * self.parallel


class Stop(BaseModel):
    reason: str


def next_step(state: LoopState, last: Iteration | None = None, outcome: IterationOutcome | None = None) -> Kind | Stop:
    """Local mode, one at a time: a baseline, a resumed commit, a noise repeat, a fix, or a new idea (or stop)."""
    kind = _next_kind(state, last, outcome)
    if not isinstance(kind, Idea):  # not a new idea: runs whatever the limits say
        return kind
    limit = _limit(state)
    return Stop(reason=limit) if limit else kind


def next_candidate(state: LoopState) -> Kind | Stop | None:
    """Deployed mode: what to start beside the candidates in flight, or None to wait for the oldest one.

    A baseline, resumed commit or noise repeat runs alone (once nothing else is in flight); a fix of a
    crashed candidate starts before new ideas; a new idea starts while the window has room and the
    limits allow; Stop once the limits are reached and nothing is in flight.
    """
    if state.alone:
        return None
    kind = _next_kind(state, None, None)
    if not isinstance(kind, Idea):
        return kind if state.running == 0 else None
    if state.running - state.measured >= state.window or state.running >= 2 * state.window:
        return None  # every slot has a training and one queued (or too many wait for an older one's row)
    if state.fixes:
        return Fix(crash=state.fixes[0])
    limit = _limit(state)
    if limit:
        return Stop(reason=limit) if state.running == 0 else None
    return kind


def _limit(state: LoopState) -> str | None:
    """Why no new idea may start: --iterations reached (ideas started count), or --stop-after passed."""
    if state.iterations is not None and state.done >= state.iterations:
        return f"ran {state.done} iterations"
    if state.out_of_time:
        return f"stop time reached after {state.done} iterations"
    return None


def _next_kind(state: LoopState, last: Iteration | None, outcome: IterationOutcome | None) -> Baseline | Resumed | Kind:
    if state.baseline_value is None:
        return Baseline()
    if state.in_flight is not None:
        return state.in_flight
    repeat = noise.next_repeat(state.rows, state.noise_repeats)
    if repeat is not None:
        return NoiseRepeat(number=repeat)
    crash = fix_of(last, outcome) if state.can_fix and last and outcome else None
    return Fix(crash=crash) if crash else Idea()


def fix_of(last: Iteration, outcome: IterationOutcome) -> CrashInfo | None:
    """The crash the next iteration repairs: a crashed idea (or fix) that trained."""
    if outcome.verdict.status != "crash" or not outcome.trained:
        return None
    if isinstance(last.kind, Fix):
        attempt, idea = last.kind.crash.attempt + 1, last.kind.crash.description
    elif last.counts:
        attempt, idea = 1, outcome.proposal.description
    else:  # a baseline or noise repeat is never "fixed"
        return None
    if attempt > MAX_FIX_ATTEMPTS:
        return None
    return CrashInfo(
        commit=outcome.commit, iteration=last.iteration, description=idea, reason=outcome.verdict.reason, attempt=attempt
    )


def logged(
    state: LoopState, ran: Iteration, baseline_commit: str, baseline_value: float | None, rows: list[LedgerRow]
) -> LoopState:
    """Local mode: the state once `ran` is logged: its row, the new baseline, the count toward --iterations."""
    return state.model_copy(
        update={
            "next_iteration": ran.iteration + 1,
            "baseline_commit": baseline_commit,
            "baseline_value": baseline_value,
            "rows": rows,
            "in_flight": None,
            "done": state.done + ran.counts,
        }
    )


def build_next(context: LoopContext, state: LoopState, kind: Kind) -> Iteration:
    """Local mode: the next iteration, numbered from the next row, judged against the last keep."""
    return Iteration(
        loop=context,
        iteration=state.next_iteration,
        baseline_commit=state.baseline_commit,
        baseline_value=state.baseline_value,
        sigma=noise.sigma(state.rows),
        kind=kind,
    )


def build_candidate(context: LoopContext, state: LoopState, kind: Kind) -> Iteration:
    """Deployed mode: the next iteration to start, judged against the branch tip now (a fix: against the
    baseline of the idea it repairs). A new idea or fix is a candidate, off the branch until it is logged."""
    crash = kind.crash if isinstance(kind, Fix) and kind.crash.baseline_commit else None
    return Iteration(
        loop=context,
        iteration=state.next_iteration,
        baseline_commit=crash.baseline_commit if crash else state.baseline_commit,
        baseline_value=crash.baseline_value if crash else state.baseline_value,
        sigma=noise.sigma(state.rows),
        candidate=isinstance(kind, Idea | Fix),
        kind=kind,
    )


def started(state: LoopState, it: Iteration) -> LoopState:
    """The state once `it` is started: the next number, one more in flight, a new idea counted, its fix taken."""
    fixes = state.fixes[1:] if isinstance(it.kind, Fix) else state.fixes
    return state.model_copy(
        update={
            "next_iteration": it.iteration + 1,
            "running": state.running + 1,
            "alone": not it.candidate,
            "done": state.done + it.counts,
            "fixes": fixes,
            "in_flight": None,
        }
    )


def arrived(state: LoopState) -> LoopState:
    """The state once a started iteration's run has ended (its row comes in start order): room in the window."""
    return state.model_copy(update={"measured": state.measured + 1})


def decided(state: LoopState, it: Iteration, outcome: IterationOutcome, rows: list[LedgerRow]) -> LoopState:
    """The state once `it`'s row is logged: a keep is the new baseline; a crashed candidate whose baseline
    is still the branch tip gets its fix queued (a fix of a stale idea could not keep)."""
    kept = outcome.verdict.status == "keep"
    crash = fix_of(it, outcome) if state.can_fix and it.candidate and it.baseline_commit == state.baseline_commit else None
    if crash is not None:
        crash = crash.model_copy(update={"baseline_commit": it.baseline_commit, "baseline_value": it.baseline_value})
    return state.model_copy(
        update={
            "baseline_commit": outcome.commit if kept else state.baseline_commit,
            "baseline_value": outcome.baseline_value if kept else state.baseline_value,
            "rows": rows,
            "running": state.running - 1,
            "measured": max(0, state.measured - 1),
            "alone": False,
            "fixes": [*state.fixes, crash] if crash else state.fixes,
        }
    )
