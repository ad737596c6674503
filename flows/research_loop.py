"""The parent flow: setup or resume, then experiment iterations forever (or --iterations N / --stop-after).

Local mode runs each iteration as an in-process subflow. When this run belongs to a deployment
(`autoresearch run --deployed`, a schedule, or `prefect deployment run research-loop/default`), each
iteration is its own `experiment-iteration/default` run (so the UI's Retry button exists for it), its
training goes to the gpu pool, and `--parallel N` trains N candidates from one baseline at once.
"""

from __future__ import annotations

import time
from uuid import UUID

from autoresearch.deployments.definitions import EXPERIMENT_ITERATION
from autoresearch.flows.experiment_iteration import IterationOutcome, experiment_iteration, iteration_tags, run_name
from autoresearch.tasks.spec import IterationSpec
from prefect import flow, get_run_logger
from prefect.client.orchestration import get_client
from prefect.runtime import deployment
from prefect.runtime import flow_run as prefect_flow_run
from pydantic import BaseModel

from autoresearch import console, followup, ledger, runs
from autoresearch.config import parse_duration
from autoresearch.errors import UserError
from autoresearch.lock import loop_lock
from autoresearch.monitor import loop_stopped
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
) -> LoopSummary:
    deployed = deployment.id is not None
    check_parameters(iterations, parallel, remote, deployed, infra_retries)
    stop_at = time.monotonic() + parse_duration(stop_after) if stop_after else None
    ws = Workspace(repo, tag, {"timeout_seconds": timeout_seconds})
    if deployed:
        _wait_for_unfinished_iterations(ws)
    iterations_of = IterationRunner(deployed, infra_retries)
    console.loop_started(prefect_flow_run.ui_url)
    _tag_loop_run(ws.tag, proposer)
    with loop_lock(ws.lock_path):
        plan = setup_or_resume(ws)
        for note in plan.notes:  # resume notes: in the UI's logs and on the terminal
            get_run_logger().info(note)
            console.say(note)
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
            done, stopped = _iterate(ws, spec, iterations_of, iterations, parallel, stop_at)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, or SIGTERM (Prefect raises TerminationSignal)
                iterations_of.cancel_unfinished()
                reset_to_last_keep(ws)
            loop_stopped(ws, f"failed: {exc}" if isinstance(exc, Exception) else "interrupted")  # notification event
            raise
    loop_stopped(ws, stopped)  # notification event
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


def _tag_loop_run(tag: str, proposer: str) -> None:
    """The loop run reads like its iterations in the UI list: its tag and its proposer."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(prefect_flow_run.id)
        client.update_flow_run(run.id, tags=sorted({*run.tags, tag, proposer}))


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
    ws: Workspace, spec: IterationSpec, runner: IterationRunner, iterations: int | None, parallel: int, stop_at: float | None
) -> tuple[int, str]:
    done = 0
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
            run = runs.wait(run_id)
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


def _wait_for_unfinished_iterations(ws: Workspace) -> None:
    """A retried or restarted loop first lets iteration runs of its loop that are still going (say,
    retried from the UI) finish, so that results.tsv and git are settled before it resumes."""
    state = ws.load_state()
    if not state:
        return
    for run_id in runs.unfinished(EXPERIMENT_ITERATION.flow_name, f"loop-{state['loop_id']}"):
        get_run_logger().info("waiting for unfinished iteration run %s of this loop", run_id)
        runs.wait(run_id)
