"""Monitoring hooks: the loop's artifacts and the new-best event after each iteration, the loop-stopped event.

`after_iteration` runs once per iteration in `experiment-iteration` (local and deployed mode alike);
`loop_stopped` when `research-loop` ends, for any reason. Monitoring must never stop the research:
any failure here is logged as a warning and the run goes on.
"""

from __future__ import annotations

import logging

from autoresearch import ledger
from autoresearch.artifacts import publish_loop_artifacts
from autoresearch.notifications import emit_loop_stopped, emit_new_best
from autoresearch.summary import results_frame
from autoresearch.workspace import Workspace


def after_iteration(ws: Workspace, commit: str) -> None:
    """After the row of `commit` was logged: publish the ledger and summary, emit new-best if it is one."""
    try:
        rows = ledger.read(ws.ledger_path, ws.config.metric, torn_ok=True)
        publish_loop_artifacts(results_frame(rows, ws.config.metric), ws.config.metric, ws.config.direction, ws.tag)
        mine = [number for number, row in enumerate(rows) if row.commit == commit[:7]]
        if mine:  # the ledger up to this row (other candidates of a parallel round may have logged since)
            emit_new_best(ws.tag, ws.root, rows[: mine[-1] + 1], ws.config.metric, ws.config.direction)
    except Exception as exc:  # noqa: BLE001 (monitoring must never stop the research)
        _logger().warning("loop artifacts not published (the loop goes on): %s", exc)


def loop_stopped(ws: Workspace, reason: str) -> None:
    """Emit `autoresearch.loop.stopped` with the reason, the number of rows and the best keep."""
    try:
        rows = ledger.read(ws.ledger_path, ws.config.metric, torn_ok=True) if ws.ledger_path.exists() else []
        best = ledger.last_keep(rows)
        emit_loop_stopped(ws.tag, ws.root, reason, len(rows), best.value if best else None, best.commit if best else None)
    except Exception as exc:  # noqa: BLE001 (monitoring must never stop the research)
        _logger().warning("loop-stopped event not emitted: %s", exc)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The run's logger (its lines show in the UI) inside a Prefect run, else a plain one."""
    from prefect import get_run_logger
    from prefect.context import FlowRunContext, TaskRunContext

    return get_run_logger() if FlowRunContext.get() or TaskRunContext.get() else logging.getLogger("autoresearch.monitor")
