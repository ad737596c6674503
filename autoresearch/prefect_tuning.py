"""Prefect settings for a loop that runs its flows in this process: no idle seconds between iterations.

Two measured costs (bench/README.md has the numbers and how they were found):

1. Joining the flow heartbeat thread at the end of every flow run (~1 s per run). No worker watches
   heartbeats in local mode, so they are switched off.
2. HTTP 503 "database is locked" from the SQLite API, in ~80% of iterations. The request that creates
   the next iteration's subflow (POST /task_runs/, a read then a write in one DEFERRED transaction)
   collides with the server's own writers (task run recorder, event persister) that are storing the
   events of the iteration that just ended. SQLite answers a stale read->write upgrade with SQLITE_BUSY
   at once (busy_timeout does not apply), and Prefect's client then sleeps 2**attempt seconds: ~2 s
   gone per iteration. An immediate retry succeeds (the other write commits within milliseconds), so
   the client's backoff is scaled down by RETRY_SCALE, and attempts are added so that the client
   still keeps retrying for about as long in all as Prefect's default (5 retries: 2+4+8+16+32 = 62 s).

Prefect 3.9's client has no setting for its backoff base: `fast_api_retries` rescales the jittered
interval that `prefect.client.base` computes (its module-level `clamped_poisson_interval`, which it
uses only for that), and puts it back on exit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

RETRY_SCALE = 1 / 32  # first retry after ~0.06 s instead of ~2 s
MAX_RETRIES = 10  # waits sum to (2 + 4 + ... + 1024) / 32 = ~64 s, Prefect's default window
JITTER = 0.2  # Prefect's default; the scaled interval is only used when jitter is on


@contextmanager
def fast_api_retries() -> Iterator[None]:
    """Within the block, the Prefect client retries 503/429/502 after ~60 ms, doubling, for ~64 s in all."""
    import prefect.client.base as client_base
    from prefect.settings import (
        PREFECT_CLIENT_MAX_RETRIES,
        PREFECT_CLIENT_RETRY_JITTER_FACTOR,
        temporary_settings,
    )

    original = client_base.clamped_poisson_interval

    def scaled(average_interval: float, clamping_factor: float = 0.3) -> float:
        return original(average_interval * RETRY_SCALE, clamping_factor)

    updates = {PREFECT_CLIENT_MAX_RETRIES: max(MAX_RETRIES, PREFECT_CLIENT_MAX_RETRIES.value())}
    if PREFECT_CLIENT_RETRY_JITTER_FACTOR.value() <= 0:
        updates[PREFECT_CLIENT_RETRY_JITTER_FACTOR] = JITTER
    client_base.clamped_poisson_interval = scaled
    try:
        with temporary_settings(updates=updates):
            yield
    finally:
        client_base.clamped_poisson_interval = original


@contextmanager
def local_mode() -> Iterator[None]:
    """Settings for running `research-loop` and its subflows in this process (`autoresearch run`)."""
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # No worker watches heartbeats in local mode, and joining the heartbeat thread costs ~1 s per flow run.
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), fast_api_retries():
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
