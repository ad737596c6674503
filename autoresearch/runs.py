"""Deployment runs seen from the side that starts them: start, wait (with our own deadline), cancel, retry.

Prefect's own timeouts do not kill a deployment run's processes and run_deployment's timeout only stops
waiting, so the deadline is enforced here: past it, the run is set to
Cancelling, which makes a live process worker kill the run's whole process group.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from typing import Any
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, State, StateType
from prefect.client.schemas.sorting import FlowRunSort
from prefect.deployments import run_deployment

from autoresearch.errors import UserError

POLL_SECONDS = 1.0  # a read of one run; the window keeps the next training queued, so a later look costs no GPU time
CANCEL_WAIT_SECONDS = 30.0  # a live process worker kills a Cancelling run within ~5 s
RETRY_DELAY_SECONDS = 5.0  # a retry sent within ~1.5 s of a crash can be overwritten by the worker
SLOW_PICKUP_SECONDS = 60.0  # a run not picked up by then: say why (pool_health), then every few minutes
SLOW_PICKUP_REPEAT_SECONDS = 180.0
UNFINISHED = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.CANCELLING)


class RunFailed(Exception):
    """A deployment run ended without a result for a reason outside the experiment (an infrastructure failure)."""


def start(
    deployment: str, parameters: dict[str, Any], name: str | None = None, tags: list[str] | None = None, as_subflow: bool = True
) -> UUID:
    """A new run of `deployment` (shown as a subflow of the calling flow run, if any); returns at once."""
    try:
        run = run_deployment(deployment, parameters=parameters, timeout=0, flow_run_name=name, tags=tags, as_subflow=as_subflow)
    except Exception as exc:
        if "404" in str(exc) or "not found" in str(exc).lower():
            raise UserError(
                f"deployment {deployment} does not exist on this Prefect server; run `autoresearch deploy` first"
            ) from None
        raise
    return run.id


def ui_url(run_id: UUID) -> str:
    from prefect.settings import PREFECT_UI_URL

    return f"{PREFECT_UI_URL.value()}/runs/flow-run/{run_id}"


def label(run: FlowRun) -> str:
    """A run as the final failure names it: several runs can share a name, the link is unique."""
    return f"'{run.name}' ({ui_url(run.id)})"


def read(run_id: UUID) -> FlowRun:
    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def set_state(run_id: UUID, state_type: StateType, name: str, message: str) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, State(type=state_type, name=name, message=message), force=True)


def cancel(run_id: UUID, message: str) -> None:
    set_state(run_id, StateType.CANCELLING, "Cancelling", message)


def retry(run_id: UUID) -> None:
    """What the UI's Retry button does: the run goes back to Scheduled (AwaitingRetry) and a worker picks it up."""
    set_state(run_id, StateType.SCHEDULED, "AwaitingRetry", "Retry from autoresearch")


def wait(
    run_id: UUID,
    deadline_after_start: float | None = None,
    on_slow_pickup: Callable[[FlowRun, float], None] | None = None,
) -> FlowRun:
    """Poll until the run is final. RunFailed when its process is gone (a worker on this host died) or
    when it is still going `deadline_after_start` seconds after it started (it is cancelled first)."""
    created = time.monotonic()
    running_since: float | None = None
    next_warning = created + SLOW_PICKUP_SECONDS
    while True:
        run = read(run_id)
        state = run.state
        if state is not None and state.is_final():
            return run
        now = time.monotonic()
        if state is not None and state.is_running():
            running_since = running_since or now
            if _process_gone(run) and not _is_final(read(run_id)):
                set_state(run_id, StateType.CRASHED, "Crashed", "its process is gone: the worker running it died")
                raise RunFailed(f"run {label(run)} lost its process (pid {run.infrastructure_pid}): the worker running it died")
        elif running_since is None and now > next_warning and on_slow_pickup:
            on_slow_pickup(run, now - created)
            next_warning = now + SLOW_PICKUP_REPEAT_SECONDS
        if deadline_after_start is not None and running_since is not None and now - running_since > deadline_after_start:
            cancel(run_id, f"hard deadline: still running {deadline_after_start:.0f} s after it started")
            answered = _wait_final(run_id, CANCEL_WAIT_SECONDS)
            raise RunFailed(
                f"run {label(run)} was still running {deadline_after_start:.0f} s after it started; cancelled it"
                + ("" if answered else " but no worker answered (the worker is gone)")
            )
        time.sleep(POLL_SECONDS)


def first_ended(run_ids: list[UUID], on_slow_pickup: Callable[[FlowRun, float], None] | None = None) -> UUID:
    """Poll the runs until one is final or has lost its process; that run's id (`wait` then tells which).
    A run not picked up for a while is reported as `wait` does."""
    created = time.monotonic()
    next_warning = created + SLOW_PICKUP_SECONDS
    while True:
        now, waiting = time.monotonic(), []
        for run_id in run_ids:
            run = read(run_id)
            if _is_final(run) or (run.state is not None and run.state.is_running() and _process_gone(run)):
                return run_id
            if run.state is not None and run.state.is_scheduled():
                waiting.append(run)
        if waiting and on_slow_pickup and now > next_warning:
            on_slow_pickup(waiting[0], now - created)
            next_warning = now + SLOW_PICKUP_REPEAT_SECONDS
        time.sleep(POLL_SECONDS)


def _is_final(run: FlowRun) -> bool:
    return run.state is not None and run.state.is_final()


def _wait_final(run_id: UUID, seconds: float) -> bool:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        if _is_final(read(run_id)):
            return True
        time.sleep(POLL_SECONDS)
    return False


def _process_gone(run: FlowRun) -> bool:
    """The run's process ran on this host and no longer exists (other hosts: the deadline decides).

    Prefect 3.9 records a bare pid; the host is known from the worker's name, which `autoresearch worker`
    starts with the host name."""
    host, _, pid = (run.infrastructure_pid or "").rpartition(":")
    worker = (run.labels or {}).get("prefect.worker.name", "")
    local = host == socket.gethostname() if host else worker.startswith(f"{socket.gethostname()}-")
    if not local or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def find(flow_name: str, tag: str, states: tuple[StateType, ...] | None = None) -> list[FlowRun]:
    """Runs of `flow_name` carrying `tag` (in one of `states`, if given), oldest start first."""
    state = FlowRunFilterState(type=FlowRunFilterStateType(any_=list(states))) if states else None
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag]), state=state),
            sort=FlowRunSort.START_TIME_ASC,
        )


def unfinished(flow_name: str, tag: str) -> list[UUID]:
    """Runs of `flow_name` carrying `tag` that are scheduled, pending, running or cancelling."""
    return [run.id for run in find(flow_name, tag, UNFINISHED)]


def result(run: FlowRun) -> Any:
    """The run's return value. A UserError raised inside the run comes back as itself (bad input is not
    retried); any other failure, crash or cancellation is a RunFailed."""
    state = run.state
    assert state is not None
    if state.is_completed():
        return state.result()
    try:
        error = state.result(raise_on_failure=False)
    except Exception as exc:  # the failure's details were not persisted (e.g. the process was killed)
        error = exc
    if isinstance(error, UserError):
        raise error
    message = state.message or (str(error) if error else "")
    raise RunFailed(f"run {label(run)} ended {state.name}: {message}".rstrip(": "))
