"""A deployment run that no worker picks up: say, every few minutes, which pool has no live worker.

The line goes to the waiting run's log (shown in the UI) and an `autoresearch.pool.no-worker` event is
emitted, so that a notification automation can page someone. A pool whose workers are alive but busy
only gets the log line: the run waits for a free slot, which is normal.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun, WorkerStatus

NO_WORKER = "autoresearch.pool.no-worker"

log = logging.getLogger("autoresearch.pool_health")


def live_workers(pool: str) -> list[str]:
    """Names of the pool's workers that the server sees as online (recent heartbeat)."""
    with get_client(sync_client=True) as client:
        workers = client.read_workers_for_work_pool(pool)
    return [worker.name for worker in workers if worker.status == WorkerStatus.ONLINE]


def no_worker_message(pool: str, run_name: str, waited_seconds: float) -> str:
    return (
        f"no live worker on pool {pool!r}: {run_name} has waited {waited_seconds:.0f} s to be picked up; "
        f"start `autoresearch worker` for the {pool} pool (see docs/deployed.md)"
    )


def check_pickup(pool: str, run: FlowRun, waited_seconds: float) -> str:
    """Log why `run` is not picked up yet; emit the event when the pool has no live worker. Returns the line."""
    from prefect.events import emit_event

    alive = live_workers(pool)
    if alive:
        line = f"{run.name} still waits for a free slot on pool {pool!r} ({len(alive)} live worker(s), all busy)"
        _logger().info(line)
        return line
    line = no_worker_message(pool, run.name, waited_seconds)
    _logger().warning(line)
    try:
        emit_event(
            event=NO_WORKER,
            resource={"prefect.resource.id": f"autoresearch.pool.{pool}", "prefect.resource.name": pool},
            related=[{"prefect.resource.id": f"prefect.flow-run.{run.id}", "prefect.resource.role": "flow-run"}],
            payload={"pool": pool, "run": run.name, "run_id": str(run.id), "waited_seconds": round(waited_seconds)},
        )
    except Exception as exc:  # noqa: BLE001 (monitoring must never stop the research)
        _logger().warning("could not emit %s: %s", NO_WORKER, exc)
    return line


def pickup_watcher(pool: str) -> Callable[[FlowRun, float], None]:
    """The callback that runs.wait calls every few minutes while a run waits to be picked up."""
    return lambda run, waited: check_pickup(pool, run, waited) and None


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (its lines show in the UI) inside a Prefect run, else a plain one."""
    from prefect import get_run_logger
    from prefect.context import FlowRunContext, TaskRunContext

    return get_run_logger() if FlowRunContext.get() or TaskRunContext.get() else log
