"""The parent flow: setup or resume, then experiment iterations forever (or --iterations N)."""

from __future__ import annotations

from prefect import flow, get_run_logger
from pydantic import BaseModel

from autoresearch import followup, ledger
from autoresearch.errors import UserError
from autoresearch.flows.experiment_iteration import IterationOutcome, experiment_iteration
from autoresearch.lock import loop_lock
from autoresearch.proposers import ProposerExhausted, proposer_options
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
    model: str | None = None,
    api_key_secret: str | None = None,
    agent_command: str | None = None,
    agent_timeout: float | None = None,
    confirm: bool = False,
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
            options = proposer_options(model, api_key_secret, agent_command, agent_timeout)
            outcome_count, stopped = _iterate(ws, plan, iterations, proposer, time_budget, options, confirm)
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


def _iterate(
    ws: Workspace, plan: LoopPlan, iterations: int | None, proposer: str, time_budget: int | None,
    options: dict | None = None, confirm: bool = False,
) -> tuple[int, str]:
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
        proposer_options=options or {},
        confirm=confirm,
    )
    spec = followup.first_spec(ws, spec)  # issue 4: sigma, a due noise repeat
    done = 0
    while True:
        extra = spec.is_baseline or spec.resume_commit or spec.fix_of or spec.noise_repeat  # not a new idea
        if not extra and iterations is not None and done >= iterations:
            return done, f"ran {done} iterations"
        try:
            outcome: IterationOutcome = experiment_iteration(spec)
        except ProposerExhausted as exc:
            return done, str(exc)
        if spec.is_baseline and outcome.row.status == "crash":
            raise UserError(
                f"the baseline run crashed ({outcome.reason}); see {ws.log_path(spec.iteration, outcome.row.commit)}, "
                "fix the experiment, then run again"
            )
        if not spec.is_baseline and not spec.fix_of and not spec.noise_repeat:
            done += 1
        spec = followup.next_spec(ws, spec, outcome)  # issue 4: noise repeats, crash fixes, else a new idea
