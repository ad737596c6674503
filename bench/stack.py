"""A throwaway Prefect server, `autoresearch deploy` and `autoresearch worker --slots N`, for deployed-mode benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CLI = [sys.executable, "-m", "autoresearch.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def prefect_stack(
    workdir: Path, env: dict[str, str], slots: int = 2, query_seconds: float = 1.0, database_url: str | None = None
) -> Iterator[dict[str, str]]:
    """Yields `env` plus PREFECT_API_URL of a fresh server (SQLite under `workdir`, or `database_url`) with
    deployments and workers."""
    port = free_port()
    env = {
        **env,
        "PREFECT_HOME": str(workdir / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
        "AUTORESEARCH_HOME": str(workdir / "home"),  # the workers' slot locks and clones
    }
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True, "env": env}
    database = {"PREFECT_API_DATABASE_CONNECTION_URL": database_url} if database_url else {}
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        **{**quiet, "env": {**env, **database}},
    )
    workers = None
    try:
        _wait_healthy(port)
        subprocess.run([*CLI, "deploy"], env=env, check=True, capture_output=True)
        workers = subprocess.Popen([*CLI, "worker", "--slots", str(slots), "--query-seconds", str(query_seconds)], **quiet)
        time.sleep(5)  # workers register and start polling
        yield env
    finally:
        for process, sig in ((workers, signal.SIGINT), (server, signal.SIGTERM)):
            if process and process.poll() is None:
                os.killpg(process.pid, sig)
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def _wait_healthy(port: int, seconds: float = 120) -> None:
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"prefect server on port {port} did not start")
