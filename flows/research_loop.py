"""The parent flow: setup or resume, then experiment iterations forever (or --iterations N / --stop-after).

Local mode runs each iteration as an in-process subflow. When this run belongs to a deployment
(`autoresearch run --deployed`, a schedule, or `prefect deployment run research-loop/default`), each
iteration is its own `experiment-iteration/default` run (so the UI's Retry button exists for it), its
training goes to the gpu pool, and `--parallel N` trains N candidates from one baseline at once.
"""

from __future__ import annotations

import time
from uuid import UUID

from autoresearch.deployments.definitions import CPU_POOL, EXPERIMENT_ITERATION
from autoresearch.flows.experiment_iteration import IterationOutcome, experiment_iteration, iteration_tags, run_name
from autoresearch.tasks.spec import IterationSpec
from prefect import flow, get_run_logger
from prefect.runtime import deployment, flow_run
from prefect.states import Cancelled, State
from pydantic import BaseModel

from autoresearch import followup, ledger, loop_attempts, runs
from autoresearch.config import parse_duration
from autoresearch.errors import UserError
from autoresearch.lock import loop_lock
from autoresearch.monitor import loop_stopped
from autoresearch.pool_health import pickup_watcher
from autoresearch.prefect_tuning import forget_finished_runs
from autoresearch.proposers import ProposerExhausted, proposer_options
from autoresearch.setup import reset_to_last_keep, setup_or_resume
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
) -> LoopSummary | State:
    deployed = deployment.id is not None
    check_parameters(iterations, parallel, remote, deployed, infra_retries)
    ws = Workspace(repo, tag, {"timeout_seconds": timeout_seconds})
    earlier = loop_attempts.AttemptProgress(attempt=1, ideas_done=0, elapsed_seconds=0.0)
    if deployed:
        collision = _other_loop_running(ws)
        if collision:
            return collision
        _wait_for_unfinished_iterations(ws)
        earlier = loop_attempts.progress(flow_run.id, flow_run.run_count)
        if earlier.attempt > 1:
            get_run_logger().info(earlier.line(iterations, stop_after))
    stop_at = time.monotonic() + max(0.0, parse_duration(stop_after) - earlier.elapsed_seconds) if stop_after else None
    iterations_of = IterationRunner(deployed, infra_retries)
    with loop_lock(ws.lock_path):
        plan = setup_or_resume(ws)
        if deployed:
            loop_attempts.name_and_tag(flow_run.id, ws.tag, plan.loop_id)
        for note in plan.notes:
            get_run_logger().info(note)
        spec = IterationSpec(
            repo=str(ws.root),
            tag=ws.tag,
            loop_id=plan.loop_id,
            iteration=plan.rows,
            baseline_commit=plan.baseline_commit,
            baseline_value=plan.baseline_value,
            proposer=proposer,
            time_budget=time_budget,
            overrides=ws.overrides,
            resume_commit=plan.in_flight_commit,
            deployed=deployed,
            remote=remote,
            proposer_options=proposer_options(model, api_key_secret, agent_command, agent_timeout),
            confirm=confirm,
            prefetch=prefetch,
        )
        spec = followup.first_spec(ws, spec)  # sigma, and a noise repeat if one is due
        try:
            done, stopped = _iterate(ws, spec, iterations_of, iterations, parallel, stop_at, earlier.ideas_done)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, or SIGTERM (Prefect raises TerminationSignal)
                iterations_of.cancel_unfinished()
                reset_to_last_keep(ws)
            loop_stopped(ws, f"failed: {exc}" if isinstance(exc, Exception) else "interrupted")  # notification event
            raise
    loop_stopped(ws, stopped)  # notification event
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    best = ledger.last_keep(rows)
    return LoopSummary(
        tag=ws.tag,
        branch=ws.branch,
        iterations_run=done,
        rows=len(rows),
        best_value=best.value if best else None,
        best_commit=best.commit if best else None,
        stopped=stopped,
    )


def check_parameters(iterations: int | None, parallel: int, remote: str | None, deployed: bool, infra_retries: int = 0) -> None:
    """One-line errors for flags that do not go together (the CLI calls it too, before Prefect starts)."""
    if iterations is not None and iterations < 1:
        raise UserError("--iterations must be at least 1 (omit it to run forever)")
    if parallel < 1:
        raise UserError("--parallel must be at least 1")
    if infra_retries < 0:
        raise UserError("infra_retries must be 0 or more")
    if not deployed and parallel != 1:
        raise UserError(
            "--parallel N trains on N GPU slots and needs deployed mode: run with --deployed (see README), or --parallel 1"
        )
    if not deployed and remote:
        raise UserError("--remote is for GPU workers on other machines and needs deployed mode: run with --deployed")


def _iterate(
    ws: Workspace,
    spec: IterationSpec,
    runner: IterationRunner,
    iterations: int | None,
    parallel: int,
    stop_at: float | None,
    done: int = 0,  # ideas finished by earlier attempts of this run
) -> tuple[int, str]:
    while True:
        extra = spec.is_baseline or spec.resume_commit or spec.fix_of or spec.noise_repeat  # not a new idea
        if not extra:
            if iterations is not None and done >= iterations:
                return done, f"ran {done} iterations"
            if stop_at is not None and time.monotonic() >= stop_at:
                return done, f"stop time reached after {done} iterations"
        size = 1 if extra else min(parallel, (iterations - done) if iterations else parallel)
        candidates = [
            spec.model_copy(
                update={"iteration": spec.iteration + k, "round_start": spec.iteration if size > 1 else None, "round_size": size}
            )
            for k in range(size)
        ]
        try:
            outcomes = runner.run(candidates)
        except ProposerExhausted as exc:
            return done, str(exc)
        forget_finished_runs()  # flat memory over thousands of iterations (autoresearch/prefect_tuning.py)
        if spec.is_baseline and outcomes[0].row.status == "crash":
            raise UserError(
                f"the baseline run crashed ({outcomes[0].reason}); see {ws.log_path(spec.iteration, outcomes[0].row.commit)}, "
                "fix the experiment, then run again"
            )
        if not (spec.is_baseline or spec.fix_of or spec.noise_repeat):  # a finished in-flight idea counts
            done += size
        if size == 1:
            spec = followup.next_spec(ws, candidates[0], outcomes[0])  # noise repeats, crash fixes, else a new idea
            continue
        winner = next((o for o in outcomes if o.baseline_commit != spec.baseline_commit), outcomes[-1])
        spec = followup.next_spec(ws, candidates[-1], winner).model_copy(
            update={"fix_of": None, "round_start": None, "round_size": 1}  # a round's crashes get no fix attempts
        )


class IterationRunner:
    """Runs a round of iterations: in-process subflows (local) or deployment runs (deployed)."""

    def __init__(self, deployed: bool, infra_retries: int) -> None:
        self.deployed = deployed
        self.infra_retries = infra_retries
        self.unfinished: list[UUID] = []

    def run(self, specs: list[IterationSpec]) -> list[IterationOutcome]:
        if not self.deployed:
            return [experiment_iteration(spec) for spec in specs]
        started = [
            runs.start(
                EXPERIMENT_ITERATION.full_name, {"spec": s.model_dump(mode="json")}, name=run_name(s), tags=iteration_tags(s)
            )
            for s in specs
        ]
        self.unfinished = list(started)
        outcomes = []
        for run_id in started:
            outcomes.append(self._finish(run_id))
            self.unfinished.remove(run_id)
        return outcomes

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
        for run_id in self.unfinished:
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
