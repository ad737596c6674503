"""One experiment: hypothesize -> edit -> commit -> train -> extract -> evaluate -> log -> keep_or_reset.

A candidate of deployed mode's window stops after evaluate (and confirm): the research loop judges it
against the branch as it is then, logs its row and moves the branch if it keeps (`finish`).
"""

from __future__ import annotations

from uuid import UUID

from autoresearch.tasks.commit import commit
from autoresearch.tasks.confirm import confirm
from autoresearch.tasks.edit import edit
from autoresearch.tasks.evaluate import evaluate
from autoresearch.tasks.extract import extract
from autoresearch.tasks.hypothesize import hypothesize, prefetch_next
from autoresearch.tasks.keep_or_reset import keep_or_reset
from autoresearch.tasks.log import log
from autoresearch.tasks.train import train
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from autoresearch import artifacts as md
from autoresearch import console, noise
from autoresearch.iteration import Iteration, IterationOutcome
from autoresearch.models import LedgerRow
from autoresearch.monitor import after_iteration
from autoresearch.secrets import redact


def run_name(spec: Iteration, description: str | None = None) -> str:
    name = f"{spec.loop.tag} · iter {spec.iteration:04d}"
    return f"{name} · {description}" if description else name


def prefetching(spec: Iteration) -> bool:
    """Local mode, one candidate at a time, a new idea next (no fix of this one can be predicted)."""
    return spec.loop.prefetch and not spec.loop.deployed and not spec.candidate and spec.repeat is None


def iteration_tags(spec: Iteration) -> list[str]:
    """tag and proposer read like results.tsv in the UI list; loop-<id> finds a loop's runs again."""
    return [spec.loop.tag, spec.loop.proposer, f"loop-{spec.loop.loop_id}"]


def _name_from_parameters() -> str:
    spec = flow_run.parameters["spec"]
    return run_name(spec if isinstance(spec, Iteration) else Iteration.model_validate(spec))


@flow(name="experiment-iteration", flow_run_name=_name_from_parameters, persist_result=True)
def experiment_iteration(spec: Iteration) -> IterationOutcome:
    measured = measure(spec)
    if spec.candidate:
        return measured  # the loop judges and logs it (rounds.still_applies)
    outcome = finish(spec, measured)
    tag_decision(spec, flow_run.id, outcome.commit, outcome.verdict.status)
    return outcome


def measure(spec: Iteration) -> IterationOutcome:
    """hypothesize -> edit -> commit -> train -> extract -> evaluate (-> confirm): the verdict, nothing logged yet."""
    console.iteration_started(spec.iteration, "proposing the next idea")
    proposal = hypothesize(spec)
    console.iteration_started(spec.iteration, proposal.description)
    _rename(run_name(spec, proposal.description), tags=iteration_tags(spec))
    edited = edit(spec, proposal)
    experiment = commit(spec, proposal, edited)
    result = metrics = None
    if edited.refused is None:
        if prefetching(spec):
            prefetch_next(spec, proposal, experiment)  # the next idea is proposed while this one trains
        result = train(spec, experiment)
        metrics = extract(spec, result)
    verdict = evaluate(spec, experiment, edited.refused, result, metrics)
    if spec.loop.confirm and verdict.status == "keep" and spec.baseline_value is not None:
        second = train(spec, experiment, run=1)
        confirmed = confirm(spec, experiment, verdict, metrics, second, extract(spec, second))
        verdict, metrics = confirmed.verdict, confirmed.metrics
    return IterationOutcome(
        iteration=spec.iteration,
        commit=experiment,
        proposal=proposal.model_copy(update={"edits": []}),
        verdict=verdict,
        metrics=metrics,
        trained=result is not None,
        training_seconds=result.seconds if result else 0.0,
        baseline_commit=spec.baseline_commit,
        baseline_value=spec.baseline_value,
    )


def finish(spec: Iteration, measured: IterationOutcome) -> IterationOutcome:
    """log -> keep_or_reset, the iteration's artifact and the monitoring events. A window's non-keeps leave git alone."""
    verdict = measured.verdict
    row = log(spec, measured.commit, measured.proposal.description, verdict, measured.metrics)
    kept = verdict.status == "keep"
    new_baseline = keep_or_reset(spec, measured.commit, verdict) if kept or not spec.candidate else spec.baseline_commit
    crashed = verdict.status == "crash" and measured.metrics is not None
    _report(spec, measured, row, measured.metrics.tail if crashed else None)
    told = console.IterationResult(
        iteration=spec.iteration,
        description=row.description,
        metric=spec.workspace().config.metric,
        value=row.value,
        best_before=spec.baseline_value,
        status=row.status,
        reason=verdict.reason,
    )
    get_run_logger().info("%s  commit %s", console.result_line(told), row.commit)
    console.iteration_result(told)
    after_iteration(spec.workspace(), row.commit)  # monitoring: ledger table, summary + plot artifacts, new-best event
    return measured.model_copy(
        update={"row": row, "baseline_commit": new_baseline, "baseline_value": row.value if kept else spec.baseline_value}
    )


def tag_decision(spec: Iteration, run_id: UUID, commit: str, status: str) -> None:
    """The iteration's run, and in deployed mode its train-on-gpu runs, carry its decision as a tag."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(run_id, tags=[*iteration_tags(spec), status])
    if spec.loop.deployed:
        _tag_trainings(spec, commit, status)


def _tag_trainings(spec: Iteration, commit: str, status: str) -> None:
    """Deployed mode: this iteration's train-on-gpu runs carry its decision too (a UI nicety: never fails)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    name = f"{run_name(spec)} · train {commit[:7]}"
    try:
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))):
                client.update_flow_run(run.id, tags=sorted({*run.tags, status}))
    except Exception as exc:  # noqa: BLE001 (monitoring must never stop the research)
        get_run_logger().warning("train-on-gpu runs not tagged with the decision: %s", exc)


def _rename(name: str | None, tags: list[str]) -> None:
    """Flow run names and tags that read like results.tsv in the UI list."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name, tags=tags)


def _noise_and_cost_lines(spec: Iteration, measured: IterationOutcome) -> list[str]:
    """The iteration artifact's lines on measured noise and on what the proposer cost."""
    ws, lines, usage = spec.workspace(), [], measured.proposal.usage
    if spec.sigma is not None:
        small, big = noise.thresholds(ws.config.small_gain, ws.config.big_gain, spec.sigma)
        lines.append(f"**Noise:** sigma {spec.sigma:.6f} from the baseline repeats; small_gain {small:.6f}, big_gain {big:.6f}")
    if usage is not None:
        lines.append(f"**Proposer cost:** {usage.line()}; this loop so far: {ws.loop_usage().line()}")
    return lines


def _report(spec: Iteration, measured: IterationOutcome, row: LedgerRow, tail: str | None) -> None:
    ws, proposal = spec.workspace(), measured.proposal
    diff = "" if spec.baseline_value is None else ws.git.diff(spec.baseline_commit, measured.commit, ws.config.editable)
    baseline = "—" if spec.baseline_value is None else f"{spec.baseline_value:.6f}"
    parts = [
        f"## {md.text(run_name(spec, proposal.description))}",
        f"**Decision: {row.status}** — {md.text(measured.verdict.reason)}",
        f"| commit | {ws.config.metric} | baseline | memory_gb |\n|---|---|---|---|\n"
        f"| `{row.commit}` | {row.value:.6f} | {baseline} | {row.memory_gb:.1f} |",
        f"**Hypothesis:** {md.text(proposal.rationale or proposal.description)}",
    ]
    parts += _noise_and_cost_lines(spec, measured)
    if diff:
        parts.append(md.fenced(diff, "diff"))
    if tail:
        parts.append(f"run.log tail (untrusted output):\n{md.fenced(tail)}")
    description = md.text(f"iteration {spec.iteration}: {row.description}")
    create_markdown_artifact(redact("\n\n".join(parts)), description=description)  # model text escaped, secrets out
