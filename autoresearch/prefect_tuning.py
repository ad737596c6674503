"""Prefect settings for a loop that runs its flows in this process (`autoresearch run`), and flat memory.

Only Prefect's own settings, applied with `temporary_settings` (the ephemeral API server that local
mode starts inherits them). What each one is for (docs/performance.md has the measurements):

- Flow heartbeats off: no worker watches them in local mode, and joining the heartbeat thread at the
  end of every flow run costs ~1 s per run.
- The ephemeral server gets 120 s to start instead of 20 s: on a loaded machine it takes longer, and the
  loop would fail before its first iteration.
- The server's own writers commit in batches: the task run recorder (one commit per task-run event by
  default) and the event persister. On SQLite every commit of theirs that lands while the client creates
  the next iteration's subflow makes that request fail with HTTP 503 "database is locked" (a stale
  read->write upgrade, which SQLite's busy timeout does not cover), and Prefect's client then waits ~2 s
  before it retries. Fewer, larger commits make that collision rare.
- Automations' services (triggers, actions) off: `autoresearch notify` needs a standing server, so an
  ephemeral one has no automation to evaluate.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

STARTUP_TIMEOUT_SECONDS = 120
RECORDER_BATCH_SIZE = 500  # task-run events per commit (Prefect's default: 1)
PERSISTER_BATCH_SIZE = 500  # events per commit (Prefect's default: 20)
FLUSH_INTERVAL_SECONDS = 2.0  # at most this late in the UI (Prefect's default: 5)


def local_settings() -> dict:
    """The settings `local_mode` applies, by Prefect setting."""
    from prefect import settings as s

    return {
        s.PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
        s.PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: STARTUP_TIMEOUT_SECONDS,
        s.PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE: RECORDER_BATCH_SIZE,
        s.PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE: RECORDER_BATCH_SIZE,
        s.PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL: FLUSH_INTERVAL_SECONDS,
        s.PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE: PERSISTER_BATCH_SIZE,
        s.PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL: FLUSH_INTERVAL_SECONDS,
        s.PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: False,  # also switches off the actions service
    }


@contextmanager
def local_mode() -> Iterator[None]:
    """Settings for running `research-loop` and its subflows in this process (`autoresearch run`)."""
    from prefect.settings import temporary_settings

    with temporary_settings(updates=local_settings()):
        yield


def forget_finished_runs() -> None:
    """Drop what the current flow run's context keeps about its finished child runs.

    Prefect remembers every child run's final state (`run_results`, to draw data dependencies between
    runs that pass results on as they are) and its assets, for the whole life of the parent run: a few KB
    per iteration, without bound, in a loop that runs for days. `research-loop` passes no result object
    from one iteration to the next (it builds a new spec from plain values), so it loses nothing by
    forgetting them after each iteration.
    """
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is not None:
        context.run_results.clear()
        context.task_run_assets.clear()
