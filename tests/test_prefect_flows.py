"""What Prefect sees: eight named tasks per iteration, and a re-run of a failed iteration skips completed tasks."""

from __future__ import annotations

from pathlib import Path

import pytest
from autoresearch.flows.experiment_iteration import experiment_iteration
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.sorting import TaskRunSort

from autoresearch import ledger
from autoresearch.errors import UserError
from autoresearch.iteration import Baseline, Idea, Iteration, LoopContext
from autoresearch.lock import loop_lock
from autoresearch.setup import setup_or_resume
from autoresearch.workspace import Workspace

TASKS = ["hypothesize", "edit", "commit", "train", "extract", "evaluate", "log", "keep_or_reset"]


def _task_runs(flow_run_id):
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), sort=TaskRunSort.EXPECTED_START_TIME_ASC
        )
    return [(run.name.rsplit("-", 1)[0], run.state.name) for run in runs]


def test_iteration_has_eight_tasks_and_a_rerun_skips_completed_ones(repo: Path):
    ws = Workspace(repo, "pf")
    with loop_lock(ws.lock_path):
        plan = setup_or_resume(ws)
    context = LoopContext(repo=str(ws.root), tag="pf", loop_id=plan.loop_id)
    spec = Iteration(loop=context, iteration=0, baseline_commit=plan.baseline_commit, kind=Baseline())
    baseline_state = experiment_iteration(spec, return_state=True)
    outcome = baseline_state.result()
    names = [name for name, _ in _task_runs(baseline_state.state_details.flow_run_id)]
    assert sorted(names) == sorted(TASKS)

    # Iteration 1 fails (the read-only file changed) after hypothesize and edit completed.
    spec = spec.model_copy(
        update={
            "iteration": 1,
            "baseline_commit": outcome.baseline_commit,
            "baseline_value": outcome.baseline_value,
            "kind": Idea(),
        }
    )
    original = (repo / "prepare.py").read_text()
    (repo / "prepare.py").write_text(original + "# changed\n")
    failed = experiment_iteration(spec, return_state=True)
    assert failed.is_failed()
    with pytest.raises(UserError, match="read-only file prepare.py changed"):
        failed.result()
    (repo / "prepare.py").write_text(original)

    rerun = experiment_iteration(spec, return_state=True)
    assert rerun.is_completed()
    states = dict(_task_runs(rerun.state_details.flow_run_id))
    assert states["hypothesize"] == states["edit"] == "Cached"
    assert states["train"] == states["log"] == "Completed"
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert len(rows) == 2 and rows[1].commit == rerun.result().row.commit
