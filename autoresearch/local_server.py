"""The persistent local Prefect server of local mode: started in the background on first use, reused afterwards.

A user's own PREFECT_API_URL (their server, Prefect Cloud; from the environment or the active Prefect
profile) always wins. Otherwise local mode talks to one `prefect server start` bound to 127.0.0.1, with its
data (SQLite) under the user's Prefect home and analytics off, so every loop stays visible in the UI
after it ends. Its process id and port live in `<prefect home>/autoresearch-server.json`, its output
in `autoresearch-server.log` next to it. A busy machine only makes it start slower: the wait is generous.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pydantic import BaseModel

from autoresearch.errors import UserError

HOST = "127.0.0.1"
DEFAULT_PORT = 4200
PORT_VARIABLE = "AUTORESEARCH_SERVER_PORT"
STATE_FILE = "autoresearch-server.json"
LOG_FILE = "autoresearch-server.log"
STARTUP_TIMEOUT_SECONDS = 300.0  # ~8 s on an idle 2-core machine; minutes when both cores are busy
STOP_TIMEOUT_SECONDS = 20.0
HEALTH_TIMEOUT_SECONDS = 2.0
SERVER_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",  # offline, analytics logs an ERROR with a traceback
    "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS": "false",
}


class ServerInfo(BaseModel):
    pid: int
    port: int

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{HOST}:{self.port}"


def prefect_home() -> Path:
    """Prefect's home directory (PREFECT_HOME, default ~/.prefect), read without importing Prefect."""
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def default_port() -> int:
    value = os.environ.get(PORT_VARIABLE) or str(DEFAULT_PORT)
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise UserError(f"{PORT_VARIABLE}={value!r} is not a port number; set it to e.g. {DEFAULT_PORT}")
    return int(value)


def configured_api_url() -> str | None:
    """The user's own PREFECT_API_URL: the environment's, else the active Prefect profile's."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def healthy(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=HEALTH_TIMEOUT_SECONDS) as response:
            return response.status == 200
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recorded() -> ServerInfo | None:
    """The server this tool started, if its process is still alive."""
    path = prefect_home() / STATE_FILE
    try:
        info = ServerInfo.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None
    return info if _alive(info.pid) else None


def running() -> ServerInfo | None:
    """The recorded server when it answers its health check."""
    info = recorded()
    return info if info is not None and healthy(info.api_url) else None


def start(port: int | None = None, timeout: float = STARTUP_TIMEOUT_SECONDS) -> ServerInfo:
    """Start `prefect server start` in the background (its own session, so it outlives this process)."""
    port = port or default_port()
    current = recorded()
    if current is not None:
        _wait_healthy(current, None, timeout)
        return current
    if healthy(f"http://{HOST}:{port}/api"):
        raise UserError(
            f"something already serves a Prefect API on port {port} that this tool did not start; "
            f"use it with PREFECT_API_URL=http://{HOST}:{port}/api, or pick another port with --port"
        )
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    api = f"http://{HOST}:{port}/api"
    env = {**os.environ, **SERVER_ENV, "PREFECT_API_URL": api, "PREFECT_UI_API_URL": api, "PREFECT_HOME": str(home)}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    with open(home / LOG_FILE, "ab") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
        )
    info = ServerInfo(pid=process.pid, port=port)
    (home / STATE_FILE).write_text(info.model_dump_json())
    _wait_healthy(info, process, timeout)
    return info


def _wait_healthy(info: ServerInfo, process: subprocess.Popen | None, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not healthy(info.api_url):
        exited = process.poll() is not None if process is not None else not _alive(info.pid)
        if exited or time.monotonic() > deadline:
            log = prefect_home() / LOG_FILE
            what = "exited" if exited else f"did not answer within {timeout:.0f} s"
            raise UserError(f"the local Prefect server on port {info.port} {what}; see {log} (port taken? try --port)")
        time.sleep(0.3)


def stop() -> ServerInfo | None:
    """Stop the server this tool started (its whole process group); None when none was running."""
    info = recorded()
    path = prefect_home() / STATE_FILE
    if info is None:
        path.unlink(missing_ok=True)
        return None
    try:
        os.killpg(info.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    while _alive(info.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _alive(info.pid):
        os.killpg(info.pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return info


def ensure(echo=None) -> str:
    """The API URL local mode talks to: the user's own, else ours (started now if needed). Sets PREFECT_API_URL."""
    url = configured_api_url()
    if url:
        return url
    info = running()
    if info is None:
        if echo:
            echo(f"starting the local Prefect server on {HOST}:{default_port()} (once; `autoresearch server stop` ends it)")
        info = start()
    os.environ["PREFECT_API_URL"] = info.api_url
    return info.api_url


def ui_address(api_url: str) -> str:
    """The UI's address for an API URL (a local server serves its UI at the same origin)."""
    return api_url.rstrip("/").removesuffix("/api")
