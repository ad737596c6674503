"""Local-mode Prefect tuning: 503s (SQLite "database is locked") retried after ~60 ms, not ~2 s; flat memory."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import prefect.client.base as client_base
from prefect import flow
from prefect.client.base import PrefectHttpxSyncClient
from prefect.context import FlowRunContext
from prefect.settings import (
    PREFECT_CLIENT_MAX_RETRIES,
    PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
)

from autoresearch.prefect_tuning import (
    MAX_RETRIES,
    RETRY_SCALE,
    fast_api_retries,
    forget_finished_runs,
    local_mode,
)


class BusyOnce(BaseHTTPRequestHandler):
    """Answers 503 to the first request (like the SQLite API under a lock conflict), then 200."""

    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        BusyOnce.requests.append(self.path)
        status = 503 if len(BusyOnce.requests) == 1 else 200
        body = b'{"exception_message": "Service Unavailable"}' if status == 503 else b"{}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_a_503_is_retried_quickly_and_succeeds():
    server = ThreadingHTTPServer(("127.0.0.1", 0), BusyOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    BusyOnce.requests = []
    delays: list[float] = []
    try:
        with fast_api_retries():
            scaled = client_base.clamped_poisson_interval

            def recorded(*args: float) -> float:  # the wait the client chose
                delays.append(scaled(*args))
                return delays[-1]

            client_base.clamped_poisson_interval = recorded
            try:
                with PrefectHttpxSyncClient(base_url=f"http://127.0.0.1:{server.server_port}") as client:
                    response = client.get("/api/health")
            finally:
                client_base.clamped_poisson_interval = scaled
    finally:
        server.shutdown()
        server.server_close()
    assert response.status_code == 200
    assert BusyOnce.requests == ["/api/health", "/api/health"]
    # Prefect asks for a ~2 s first backoff (2**1, jitter 0.2); scaled, the wait was at most 2 * 1.2 / 32 s.
    assert len(delays) == 1 and 0 < delays[0] <= 2 * 1.2 * RETRY_SCALE


def test_settings_apply_inside_the_block_only():
    before = client_base.clamped_poisson_interval
    with local_mode():
        assert PREFECT_FLOWS_HEARTBEAT_FREQUENCY.value() is None
        assert PREFECT_CLIENT_MAX_RETRIES.value() >= MAX_RETRIES
        assert client_base.clamped_poisson_interval is not before
        assert client_base.clamped_poisson_interval(64.0, 0.2) <= 64.0 * 1.2 * RETRY_SCALE
    assert client_base.clamped_poisson_interval is before
    assert PREFECT_CLIENT_MAX_RETRIES.value() < MAX_RETRIES  # Prefect's default (5) is back


@flow
def _child(number: int) -> dict:
    return {"number": number}


@flow
def _parent(children: int) -> tuple[int, int]:
    for number in range(children):
        _child(number)
    remembered = len(FlowRunContext.get().run_results)
    forget_finished_runs()
    return remembered, len(FlowRunContext.get().run_results)


def test_a_parent_flow_forgets_its_finished_children():
    with local_mode():
        remembered, after = _parent(3)
    assert remembered >= 3  # Prefect keeps one entry per finished child run for the parent's lifetime
    assert after == 0
