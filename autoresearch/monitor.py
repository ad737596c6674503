"""The monitoring hook at the end of each iteration: the loop's artifacts in the UI and the new-best event.

Called once per iteration from `experiment-iteration` (local and deployed mode alike). Monitoring must
never stop the research: any failure here is logged as a warning and the iteration still completes.
"""

from __future__ import annotations

import logging

from autoresearch import ledger
from autoresearch.artifacts import publish_loop_artifacts
from autoresearch.notifications import emit_new_best
from autoresearch.workspace import Workspace


def after_iteration(ws: Workspace) -> None:
    try:
        rows = ledger.read(ws.ledger_path, ws.config.metric, torn_ok=True)
        publish_loop_artifacts(rows, ws.config.metric, ws.config.direction, ws.tag)
        emit_new_best(ws.tag, ws.root, rows, ws.config.metric, ws.config.direction)
    except Exception as exc:  # noqa: BLE001 (monitoring must never stop the research)
        _logger().warning("loop artifacts not published (the loop goes on): %s", exc)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        from prefect import get_run_logger

        return get_run_logger()
    except Exception:  # noqa: BLE001 (outside a run)
        return logging.getLogger("autoresearch.monitor")
