"""Training on the `gpu` work pool (deployed mode): make the commit reachable for the worker, start a
`train-on-gpu` run, and wait for it under a deadline of our own (Prefect's timeouts do not kill)."""

from __future__ import annotations

from autoresearch import runs, train_report
from autoresearch.deployments.definitions import GPU_POOL, TRAIN_ON_GPU
from autoresearch.errors import UserError
from autoresearch.gitops import Git, GitFailed
from autoresearch.pool_health import pickup_watcher
from autoresearch.slot_turn import longest_wait
from autoresearch.training_job import TrainReport, TrainRequest

# The worker's own hard timeout fires at timeout_seconds; past this much more, the worker is presumed gone.
DEADLINE_GRACE_SECONDS = 120.0


def deadline_after_start(timeout_seconds: float) -> float:
    """A run may wait for its slot while the slot's current training runs out its timeout, then train."""
    return longest_wait(timeout_seconds) + timeout_seconds + DEADLINE_GRACE_SECONDS


def train_on_pool(request: TrainRequest, git: Git, run_name: str, tags: list[str]) -> TrainReport:
    if request.remote:
        publish_commit(git, request)
    run_id = runs.start(TRAIN_ON_GPU.full_name, {"request": request.model_dump(mode="json")}, name=run_name, tags=tags)
    run = runs.wait(
        run_id, deadline_after_start=deadline_after_start(request.timeout_seconds), on_slow_pickup=pickup_watcher(GPU_POOL)
    )
    if not run.state.is_completed():
        runs.result(run)  # raises: a UserError from the worker as itself, anything else as RunFailed
    try:
        return train_report.fetch(run_id)
    except train_report.ReportMissing as exc:
        raise runs.RunFailed(f"{exc} ({runs.ui_url(run_id)})") from None


def publish_commit(git: Git, request: TrainRequest) -> None:
    """Push the experiment commit to the remote under its refs/autoresearch/ name, where workers fetch it."""
    assert request.remote
    try:
        git.run("push", "-q", "--no-verify", request.remote, f"{request.commit}:{request.ref}")
    except GitFailed as exc:
        raise UserError(
            f"could not push {request.commit[:7]} to --remote {request.remote} ({exc}); check the URL and access"
        ) from None
