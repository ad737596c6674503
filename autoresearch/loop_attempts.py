"""A deployed research-loop run across its attempts: Retry (from the UI, or of a Completed run) finishes
what was asked instead of starting over, and the run is named and tagged like its iterations.

`--iterations` counts the ideas finished by every attempt of the run (its Completed experiment-iteration
child runs that were ideas, not a baseline, a fix or a noise repeat); `--stop-after` counts from the
run's first start, which Prefect keeps across retries.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import StateType
from pydantic import BaseModel

ITERATION_FLOW = "experiment-iteration"
LOOP_FLOW = "research-loop"


class AttemptProgress(BaseModel):
    """What earlier attempts of this loop run already did."""

    attempt: int  # 1 for the first
    ideas_done: int  # new ideas finished (each has its row in results.tsv)
    elapsed_seconds: float  # since the run's first start

    def line(self, iterations: int | None, stop_after: str | None) -> str:
        asked = f" of --iterations {iterations}" if iterations is not None else ""
        used = f", {self.elapsed_seconds:.0f} s of --stop-after {stop_after} used" if stop_after else ""
        return (
            f"attempt {self.attempt} of this loop run: earlier attempts finished {self.ideas_done} idea(s){asked}{used}; "
            "resuming from results.tsv and the branch"
        )


def is_idea(spec: dict[str, Any]) -> bool:
    """An iteration that counts toward --iterations (a new or resumed idea; not a baseline, fix or noise repeat)."""
    from autoresearch.iteration import Iteration

    return Iteration.model_validate(spec).counts


def progress(loop_run_id: UUID, attempt: int, now: datetime | None = None) -> AttemptProgress:
    """Read from the API: the ideas this run's earlier attempts finished, and the time since its first start."""
    with get_client(sync_client=True) as client:
        loop = client.read_flow_run(loop_run_id)
        children = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[ITERATION_FLOW])),
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[loop_run_id]),
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED])),
            ),
        )
    ideas = sum(is_idea(_spec(child.parameters)) for child in children)
    first = loop.start_time or now or datetime.now(UTC)
    elapsed = ((now or datetime.now(UTC)) - first).total_seconds()
    return AttemptProgress(attempt=attempt, ideas_done=ideas, elapsed_seconds=max(0.0, elapsed))


def _spec(parameters: dict[str, Any]) -> dict[str, Any]:
    spec = parameters.get("spec", {})
    return spec if isinstance(spec, dict) else spec.model_dump()


def loop_run_name(tag: str) -> str:
    return f"{tag} · research loop"


def loop_tags(tag: str, loop_id: str | None = None) -> list[str]:
    """The loop run's tags: its tag (as its iterations), the flow name, and loop-<id> once known."""
    return [tag, LOOP_FLOW, *([f"loop-{loop_id}"] if loop_id else [])]


def name_and_tag(run_id: UUID, tag: str, loop_id: str, extra: list[str] | None = None) -> None:
    """A run started by a schedule or `prefect deployment run` carries neither: add them, keeping its own tags.
    `extra`: more tags (the proposer), so the loop run reads like its iterations in the UI list."""
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(run_id)
        tags = list(dict.fromkeys([*run.tags, *loop_tags(tag, loop_id), *(extra or [])]))
        client.update_flow_run(run_id, name=loop_run_name(tag), tags=tags)


def running_loop(loop_id: str, me: UUID | str) -> Any | None:
    """Another research-loop run of the same loop (same repo and tag) that is still going, or None."""
    from autoresearch import runs

    others = runs.find(LOOP_FLOW, f"loop-{loop_id}", (StateType.PENDING, StateType.RUNNING, StateType.CANCELLING))
    return next((run for run in others if str(run.id) != str(me)), None)
