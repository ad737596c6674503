"""One experiment: hypothesize -> edit -> commit -> train -> extract -> evaluate -> log -> keep_or_reset."""

from __future__ import annotations

from autoresearch.tasks.commit import commit
from autoresearch.tasks.confirm import confirm
from autoresearch.tasks.edit import edit
from autoresearch.tasks.evaluate import evaluate
from autoresearch.tasks.extract import extract
from autoresearch.tasks.hypothesize import hypothesize, prefetch_next
from autoresearch.tasks.keep_or_reset import keep_or_reset
from autoresearch.tasks.log import log
from autoresearch.tasks.spec import IterationSpec
from autoresearch.tasks.train import train
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run
from pydantic import BaseModel

from autoresearch import console, noise
from autoresearch.models import Decision, LedgerRow, Proposal
from autoresearch.monitor import after_iteration


class IterationOutcome(BaseModel):
    iteration: int
    row: LedgerRow
    reason: str
    baseline_commit: str  # after this iteration: the commit the next one starts from
    baseline_value: float | None
    training_seconds: float = 0.0


def run_name(spec: IterationSpec, description: str | None = None) -> str:
    name = f"{spec.tag} · iter {spec.iteration:04d}"
    return f"{name} · {description}" if description else name


def prefetching(spec: IterationSpec) -> bool:
    """Local mode, one candidate at a time, a new idea next (no fix of this one can be predicted)."""
    return spec.prefetch and not spec.deployed and not spec.in_round and not spec.noise_repeat


def iteration_tags(spec: IterationSpec) -> list[str]:
    """tag and proposer read like results.tsv in the UI list; loop-<id> finds a loop's runs again."""
    return [spec.tag, spec.proposer, f"loop-{spec.loop_id}"]


def _name_from_parameters() -> str:
    spec = flow_run.parameters["spec"]
    return run_name(spec if isinstance(spec, IterationSpec) else IterationSpec.model_validate(spec))


@flow(name="experiment-iteration", flow_run_name=_name_from_parameters, persist_result=True)
def experiment_iteration(spec: IterationSpec) -> IterationOutcome:
    logger = get_run_logger()
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
    if spec.confirm and verdict.status == "keep" and not spec.is_baseline:  # --confirm (issue 4)
        second = train(spec, experiment, run=1)
        confirmed = confirm(spec, experiment, verdict, metrics, second, extract(spec, second))
        verdict, metrics = confirmed.verdict, confirmed.metrics
    row = log(spec, experiment, proposal.description, verdict, metrics)
    new_baseline = keep_or_reset(spec, experiment, verdict)
    kept = verdict.status == "keep"
    _report(spec, proposal, experiment, verdict, row, metrics.tail if metrics and verdict.status == "crash" else None)
    told = console.IterationResult(
        iteration=spec.iteration,
        description=proposal.description,
        metric=spec.workspace().config.metric,
        value=row.value,
        best_before=spec.baseline_value,
        status=row.status,
        reason=verdict.reason,
    )
    logger.info("%s  commit %s", console.result_line(told), row.commit)
    console.iteration_result(told)
    after_iteration(spec.workspace(), row.commit)  # monitoring: ledger table, summary + plot artifacts, new-best event
    _rename(None, tags=[*iteration_tags(spec), row.status])
    if spec.deployed:
        _tag_trainings(spec, experiment, row.status)
    return IterationOutcome(
        iteration=spec.iteration,
        row=row,
        reason=verdict.reason,
        baseline_commit=new_baseline,
        baseline_value=row.value if kept else spec.baseline_value,
        training_seconds=result.seconds if result else 0.0,
    )


def _rename(name: str | None, tags: list[str]) -> None:
    """Flow run names and tags that read like results.tsv in the UI list."""
    with get_client(sync_client=True) as client:
        client.update_flow_run(flow_run.id, name=name, tags=tags)


def _tag_trainings(spec: IterationSpec, commit: str, status: str) -> None:
    """Deployed mode: this iteration's train-on-gpu runs carry its decision too (a UI nicety: never fails)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    name = f"{spec.tag} · iter {spec.iteration:04d} · train {commit[:7]}"
    try:
        with get_client(sync_client=True) as client:
            for run in client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[name]))):
                client.update_flow_run(run.id, tags=sorted({*run.tags, status}))
    except Exception as exc:  # noqa: BLE001 (monitoring must never stop the research)
        get_run_logger().warning("train-on-gpu runs not tagged with the decision: %s", exc)


def _issue4_lines(spec: IterationSpec, proposal: Proposal) -> list[str]:
    """Noise and cost lines of the iteration artifact (issue 4)."""
    ws, lines = spec.workspace(), []
    if spec.sigma is not None:
        small, big = noise.thresholds(ws.config.small_gain, ws.config.big_gain, spec.sigma)
        lines.append(f"**Noise:** sigma {spec.sigma:.6f} from the baseline repeats; small_gain {small:.6f}, big_gain {big:.6f}")
    if proposal.usage is not None:
        lines.append(f"**Proposer cost:** {proposal.usage.line()}; this loop so far: {ws.loop_usage().line()}")
    return lines


def _report(
    spec: IterationSpec, proposal: Proposal, experiment: str, verdict: Decision, row: LedgerRow, tail: str | None
) -> None:
    ws = spec.workspace()
    diff = "" if spec.is_baseline else ws.git.diff(spec.baseline_commit, experiment, ws.config.editable)
    baseline = "—" if spec.baseline_value is None else f"{spec.baseline_value:.6f}"
    parts = [
        f"## {run_name(spec, proposal.description)}",
        f"**Decision: {row.status}** — {verdict.reason}",
        f"| commit | {ws.config.metric} | baseline | memory_gb |\n|---|---|---|---|\n"
        f"| `{row.commit}` | {row.value:.6f} | {baseline} | {row.memory_gb:.1f} |",
        f"**Hypothesis:** {proposal.rationale or proposal.description}",
    ]
    parts += _issue4_lines(spec, proposal)
    if diff:
        parts.append(f"```diff\n{diff}\n```")
    if tail:
        parts.append(f"run.log tail (untrusted output):\n```text\n{tail}\n```")
    create_markdown_artifact("\n\n".join(parts), description=f"iteration {spec.iteration}: {row.description}")
