"""The parent flow: setup or resume, then experiment iterations forever (or --iterations N)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.flows.experiment_iteration import IterationOutcome, experiment_iteration
from autoresearch.lock import loop_lock
from autoresearch.prefect_tuning import forget_finished_runs
from autoresearch.proposers import ProposerExhausted
from autoresearch.setup import LoopPlan, reset_to_last_keep, setup_or_resume
from autoresearch.tasks.spec import IterationSpec
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
) -> LoopSummary:
    if iterations is not None and iterations < 1:
        raise UserError("--iterations must be at least 1 (omit it to run forever)")
    if parallel != 1:
        raise UserError("--parallel N needs deployed mode, which is not available yet; run with --parallel 1")
    logger = get_run_logger()
    ws = Workspace(repo, tag, {"timeout_seconds": timeout_seconds})
    with loop_lock(ws.lock_path):
        plan = setup_or_resume(ws)
        for note in plan.notes:
            logger.info(note)
        try:
            outcome_count, stopped = _iterate(ws, plan, iterations, proposer, time_budget)
        except BaseException as exc:
            if not isinstance(exc, Exception):  # Ctrl-C, or SIGTERM (Prefect raises TerminationSignal)
                reset_to_last_keep(ws)
            raise
    rows = ledger.read(ws.ledger_path, ws.config.metric)
    best = ledger.last_keep(rows)
    return LoopSummary(
        tag=ws.tag,
        branch=ws.branch,
        iterations_run=outcome_count,
        rows=len(rows),
        best_value=best.value if best else None,
        best_commit=best.commit if best else None,
        stopped=stopped,
    )


def _iterate(ws: Workspace, plan: LoopPlan, iterations: int | None, proposer: str, time_budget: int | None) -> tuple[int, str]:
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
    )
    done = 0
    while True:
        if not spec.is_baseline and spec.resume_commit is None and iterations is not None and done >= iterations:
            return done, f"ran {done} iterations"
        try:
            outcome: IterationOutcome = experiment_iteration(spec)
        except ProposerExhausted as exc:
            return done, str(exc)
        forget_finished_runs()  # flat memory over thousands of iterations (autoresearch/prefect_tuning.py)
        if spec.is_baseline and outcome.row.status == "crash":
            raise UserError(
                f"the baseline run crashed ({outcome.reason}); see {ws.log_path(spec.iteration, outcome.row.commit)}, "
                "fix the experiment, then run again"
            )
        if not spec.is_baseline:
            done += 1
        spec = spec.model_copy(
            update={
                "iteration": spec.iteration + 1,
                "baseline_commit": outcome.baseline_commit,
                "baseline_value": outcome.baseline_value,
                "resume_commit": None,
            }
        )
