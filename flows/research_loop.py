"""The parent flow: setup or resume, then experiment iterations forever (or --iterations N / --stop-after).

Local mode runs each iteration as an in-process subflow. When this run belongs to a deployment
(`autoresearch run --deployed`, a schedule, or `prefect deployment run research-loop/default`), each
iteration is its own `experiment-iteration/default` run (so the UI's Retry button exists for it), its
training goes to the gpu pool, and the loop keeps a window of 2 x `--parallel` candidates in flight:
while each of the N GPU slots trains one, the next one is already proposed, committed and queued
(autoresearch/rounds.py has the rules; docs/deployed.md what a user sees).
"""

from __future__ import annotations

import time
from collections import deque
from uuid import UUID

from autoresearch.deployments.definitions import CPU_POOL, EXPERIMENT_ITERATION, TRAIN_ON_GPU
from autoresearch.flows.experiment_iteration import experiment_iteration, finish, iteration_tags, run_name, tag_decision
from prefect import flow, get_run_logger
from prefect.runtime import deployment, flow_run
from prefect.states import Cancelled, State
from pydantic import BaseModel

from autoresearch import console, ledger, loop_attempts, noise, rounds, runs
from autoresearch.config import parse_duration
from autoresearch.errors import UserError
from autoresearch.iteration import (
    Baseline,
    Iteration,
    IterationOutcome,
    LoopContext,
    LoopState,
    Stop,
    arrived,
    build_candidate,
    build_next,
    decided,
    logged,
    next_candidate,
    next_step,
    resumed,
    started,
)
from autoresearch.lock import loop_lock
from autoresearch.models import LedgerRow
from autoresearch.monitor import loop_stopped
from autoresearch.options import LoopOptions
from autoresearch.patience import proposer_settings
from autoresearch.pool_health import pickup_watcher
from autoresearch.prefect_tuning import forget_finished_runs
from autoresearch.prefetch import PREFETCHER, worth_prefetching
from autoresearch.proposers import ProposerExhausted, get_proposer
from autoresearch.setup import LoopPlan, reset_to_last_keep, setup_or_resume
from autoresearch.workspace import Workspace


class LoopSummary(BaseModel):
    tag: str
    branch: str
    iterations_run: int
    rows: int
    best_value: float | None
    best_commit: str | None
    stopped: str


@flow(name="research-loop", flow_run_name="{tag} · research loop", persist_result=True)
def research_loop(
    repo: str = ".",
    tag: str | None = None,
    iterations: int | None = None,
    proposer: str = "mutate",
    time_budget: int | None = None,
    timeout_seconds: float | None = None,
    parallel: int = 1,
    remote: str | None = None,
    stop_after: str | None = None,
    infra_retries: int = 2,
    prefetch: bool = True,
    model: str | None = None,
    api_key_secret: str | None = None,
    agent_command: str | None = None,
    agent_timeout: float | None = None,
    confirm: bool = False,
    proposer_timeout_seconds: float | None = None,
    proposer_patience_seconds: float | None = None,
) -> LoopSummary | State:
    """The parameters are LoopOptions' fields (autoresearch/options.py), checked there."""
    options = LoopOptions(**locals())
    deployed = deployment.id is not None
    options.check_mode(deployed)
    return run_loop(options, deployed)


def run_loop(options: LoopOptions, deployed: bool) -> LoopSummary | State:
    ws = Workspace(options.repo, options.tag, options.config_overrides())
    earlier = loop_attempts.AttemptProgress(attempt=1, ideas_done=0, elapsed_seconds=0.0)
    if deployed:  # a retried run finishes what was asked: counts and time across its attempts
        collision = _other_loop_running(ws)
        if collision:
            return collision
        _wait_for_unfinished_iterations(ws)
        earlier = loop_attempts.progress(flow_run.id, flow_run.run_count)
        if earlier.attempt > 1:
            get_run_logger().info(earlier.line(options.iterations, options.stop_after))
    stop_after = parse_duration(options.stop_after) - earlier.elapsed_seconds if options.stop_after else None
    stop_at = time.monotonic() + max(0.0, stop_after) if stop_after is not None else None
    runner = IterationRunner(options.infra_retries)
    console.loop_started(flow_run.ui_url)
    with loop_lock(ws.lock_path):
        plan = setup_or_resume(ws)
        loop_attempts.name_and_tag(flow_run.id, ws.tag, plan.loop_id, extra=[options.proposer])
        for note in plan.notes:  # resume notes: in the UI's logs and on the terminal
            get_run_logger().info(note)
            console.say(note)
        context = _context(ws, plan, options, deployed)
        try:
            first = _initial_state(ws, plan, options, earlier.ideas_done)
            loop = _pipeline if deployed else _iterate
            done, stopped = loop(ws, context, first, runner, stop_at)
        except BaseException as exc:
            runner.cancel_unfinished()  # deployed: the window's other runs and their trainings, queued or running
            if not isinstance(exc, Exception):  # Ctrl-C, or SIGTERM (Prefect raises TerminationSignal)
                reset_to_last_keep(ws)
            loop_stopped(ws, f"failed: {exc}" if isinstance(exc, Exception) else "interrupted")  # notification event
            raise
        finally:
            PREFETCHER.cancel()  # a proposal for an iteration that will not run: dropped, never waited for
    loop_stopped(ws, stopped)  # notification event
    return _summary(ws, done, stopped)


def _context(ws: Workspace, plan: LoopPlan, options: LoopOptions, deployed: bool) -> LoopContext:
    return LoopContext(
        repo=str(ws.root),
        tag=ws.tag,
        loop_id=plan.loop_id,
        overrides=ws.overrides,
        proposer=options.proposer,
        proposer_options=options.proposer_options() | proposer_settings(ws.config),
        time_budget=options.time_budget,
        deployed=deployed,
        remote=options.remote,
        prefetch=options.prefetch,
        confirm=options.confirm,
    )


def _initial_state(ws: Workspace, plan: LoopPlan, options: LoopOptions, done: int = 0) -> LoopState:
    in_flight = plan.in_flight_commit
    subject = ws.git.message(in_flight).splitlines()[0] if in_flight else ""
    return LoopState(
        next_iteration=plan.rows,
        baseline_commit=plan.baseline_commit,
        baseline_value=plan.baseline_value,
        rows=_rows(ws),
        noise_repeats=ws.config.noise_repeats,
        can_fix=get_proposer(options.proposer, **options.proposer_options()).can_fix,
        in_flight=resumed(in_flight, subject) if in_flight else None,
        iterations=options.iterations,
        parallel=options.parallel,
        done=done,  # ideas finished by earlier attempts of this run
    )


def _iterate(
    ws: Workspace, context: LoopContext, state: LoopState, runner: IterationRunner, stop_at: float | None
) -> tuple[int, str]:
    """Local mode: one in-process iteration after another, each one's kind chosen by `next_step`, until it says stop."""
    last: Iteration | None = None
    outcome: IterationOutcome | None = None
    last_training = 0.0
    while True:
        state = state.model_copy(update={"out_of_time": stop_at is not None and time.monotonic() >= stop_at})
        step = next_step(state, last, outcome)
        if isinstance(step, Stop):
            return state.done, step.reason
        last = _prefetch_only_if_needed(build_next(context, state, step), state, stop_at, last_training)
        try:
            outcome = experiment_iteration(last)
        except ProposerExhausted as exc:
            return state.done, str(exc)
        forget_finished_runs()  # flat memory over thousands of iterations (autoresearch/prefect_tuning.py)
        _stop_if_the_baseline_crashed(ws, last, outcome)
        last_training = outcome.training_seconds
        state = logged(state, last, outcome.baseline_commit, outcome.baseline_value, _rows(ws))


def _pipeline(
    ws: Workspace, context: LoopContext, state: LoopState, runner: IterationRunner, stop_at: float | None
) -> tuple[int, str]:
    """Deployed mode: keep the window of candidates full (`next_candidate`), starting the next one as soon as
    any run in flight ends; log the ended ones in start order, each judged against the branch as it is then.
    Ends when `next_candidate` says stop, or when the proposer has no idea left."""
    window: deque[Iteration] = deque()
    ended: dict[int, IterationOutcome | ProposerExhausted] = {}
    while True:
        state = state.model_copy(update={"out_of_time": stop_at is not None and time.monotonic() >= stop_at})
        if window and window[0].iteration in ended:  # the oldest one's turn: judge and log it
            spec = window.popleft()
            outcome = ended.pop(spec.iteration)
            if isinstance(outcome, ProposerExhausted):  # no commit, no row: later ones would misnumber rows
                runner.cancel_unfinished()
                return state.done, str(outcome)
            outcome = _judged(spec, runner.run_ids.pop(spec.iteration), outcome, tip=state.baseline_commit)
            forget_finished_runs()  # flat memory over thousands of iterations (autoresearch/prefect_tuning.py)
            _stop_if_the_baseline_crashed(ws, spec, outcome)
            state = decided(state, spec, outcome, _rows(ws))
            continue
        step = next_candidate(state)
        if isinstance(step, Stop):
            return state.done, step.reason
        if step is not None:
            spec = build_candidate(context, state, step)
            runner.start(spec)
            window.append(spec)
            state = started(state, spec)
            continue
        spec, outcome = runner.next_ended()
        ended[spec.iteration], state = outcome, arrived(state)


def _judged(spec: Iteration, run_id: UUID, outcome: IterationOutcome, tip: str) -> IterationOutcome:
    """A candidate's outcome logged with its final decision (an iteration run alone logged itself)."""
    if not spec.candidate:
        return outcome
    verdict = rounds.still_applies(outcome.verdict, spec.baseline_commit, tip)
    logged = finish(spec, outcome.model_copy(update={"verdict": verdict}))
    tag_decision(spec, run_id, logged.commit, verdict.status)
    return logged


def _prefetch_only_if_needed(it: Iteration, state: LoopState, stop_at: float | None, last_training: float) -> Iteration:
    """No proposal ahead of time for an iteration that will not run (past --iterations or --stop-after)."""
    if worth_prefetching(state.iterations, state.done + it.counts, stop_at, time.monotonic(), last_training):
        return it
    return it.model_copy(update={"loop": it.loop.model_copy(update={"prefetch": False})})


def _stop_if_the_baseline_crashed(ws: Workspace, spec: Iteration, outcome: IterationOutcome) -> None:
    if isinstance(spec.kind, Baseline) and outcome.verdict.status == "crash":
        raise UserError(
            f"the baseline run crashed ({outcome.verdict.reason}); see {ws.log_path(spec.iteration, outcome.commit[:7])}, "
            "fix the experiment, then run again"
        )


def _rows(ws: Workspace) -> list[LedgerRow]:
    """results.tsv, and sigma from it saved in the loop state (recomputed, so it survives any resume)."""
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    sigma = noise.sigma(rows)
    if sigma is not None and ws.recorded("noise").get("sigma") != sigma:
        ws.record("noise", "sigma", sigma)
    return rows


def _summary(ws: Workspace, done: int, stopped: str) -> LoopSummary:
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    best = ledger.last_keep(rows)
    get_run_logger().info(
        "%s: %s; %d rows in results.tsv; best %s; branch %s",
        ws.tag,
        stopped,
        len(rows),
        f"{best.value:.6f} ({best.commit})" if best else "none yet",
        ws.branch,
    )
    return LoopSummary(
        tag=ws.tag,
        branch=ws.branch,
        iterations_run=done,
        rows=len(rows),
        best_value=best.value if best else None,
        best_commit=best.commit if best else None,
        stopped=stopped,
    )


class IterationRunner:
    """Deployed mode's iterations as `experiment-iteration/default` runs: started now, collected later."""

    def __init__(self, infra_retries: int) -> None:
        self.infra_retries = infra_retries
        self.unfinished: dict[int, tuple[UUID, Iteration]] = {}  # by iteration number
        self.run_ids: dict[int, UUID] = {}  # ended, until the loop has logged them

    def start(self, spec: Iteration) -> None:
        params = {"spec": spec.model_dump(mode="json")}
        run_id = runs.start(EXPERIMENT_ITERATION.full_name, params, name=run_name(spec), tags=iteration_tags(spec))
        self.unfinished[spec.iteration] = (run_id, spec)

    def next_ended(self) -> tuple[Iteration, IterationOutcome | ProposerExhausted]:
        """The first iteration run in flight to end, and its outcome (measured, for a candidate; logged, for
        the others); a proposer out of ideas comes back as such."""
        run_id = runs.first_ended([run_id for run_id, _ in self.unfinished.values()], pickup_watcher(CPU_POOL))
        number, spec = next((n, spec) for n, (found, spec) in self.unfinished.items() if found == run_id)
        try:
            outcome: IterationOutcome | ProposerExhausted = self._finish(run_id)
        except ProposerExhausted as exc:
            outcome = exc
        del self.unfinished[number]
        self.run_ids[number] = run_id
        return spec, outcome

    def _finish(self, run_id: UUID) -> IterationOutcome:
        """Wait for the run; an infrastructure failure is retried (the UI's own Retry call) a few times."""
        for attempt in range(self.infra_retries + 1):
            run = runs.wait(run_id, on_slow_pickup=pickup_watcher(CPU_POOL))
            try:
                return runs.result(run)
            except runs.RunFailed as exc:
                if attempt == self.infra_retries:
                    raise runs.RunFailed(
                        f"{exc}; retry that run from the UI when the cause is fixed, then retry this loop"
                    ) from None
                get_run_logger().warning("%s; retrying it (%d/%d)", exc, attempt + 1, self.infra_retries)
                time.sleep(runs.RETRY_DELAY_SECONDS)
                runs.retry(run_id)
        raise AssertionError("unreachable")

    def cancel_unfinished(self) -> None:
        """Cancel the iteration runs in flight and their trainings, queued or running."""
        if not self.unfinished:
            return
        specs = [spec for _, spec in self.unfinished.values()]
        prefixes = tuple(f"{run_name(spec)} · " for spec in specs)
        queued = runs.find(TRAIN_ON_GPU.flow_name, specs[0].loop.tag, runs.UNFINISHED)
        trainings = [run.id for run in queued if run.name.startswith(prefixes)]
        for run_id in [*(run_id for run_id, _ in self.unfinished.values()), *trainings]:
            state = runs.read(run_id).state
            if state is None or not state.is_final():  # a run that already failed keeps its state
                runs.cancel(run_id, "the research loop was stopped")


def _other_loop_running(ws: Workspace) -> State | None:
    """A run of this loop (same repo and tag) is still going, e.g. a schedule fired before the last one
    ended: this run ends Cancelled, naming it, and touches nothing."""
    state = ws.load_state()
    other = loop_attempts.running_loop(state["loop_id"], flow_run.id) if state else None
    if other is None:
        return None
    message = f"the loop {other.name} ({runs.ui_url(other.id)}) is still running on {ws.root}; this run did nothing"
    get_run_logger().warning(message)
    return Cancelled(message=message)


def _wait_for_unfinished_iterations(ws: Workspace) -> None:
    """A retried or restarted loop first lets iteration runs of its loop that are still going (say,
    retried from the UI) finish, so that results.tsv and git are settled before it resumes."""
    state = ws.load_state()
    if not state:
        return
    for run_id in runs.unfinished(EXPERIMENT_ITERATION.flow_name, f"loop-{state['loop_id']}"):
        get_run_logger().info("waiting for unfinished iteration run %s of this loop", run_id)
        runs.wait(run_id)
