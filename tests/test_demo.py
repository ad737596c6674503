"""`autoresearch demo` and the persistent local Prefect server, for real: a fresh Prefect home, no
PREFECT_API_URL, a real `prefect server start` in the background, real torch training on the bundled
experiment, while two processes burn both cores (the start-up must not fail on a busy machine)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import cli

from autoresearch import ledger
from autoresearch.local_server import LOG_FILE, STATE_FILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
HOG = "while True: pass"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def both_cores_busy() -> Iterator[None]:
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.fixture
def own_home(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a new user: their own Prefect home, no PREFECT_API_URL; the server is stopped afterwards."""
    env = {
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": "",
        "AUTORESEARCH_SERVER_PORT": str(_free_port()),
    }
    yield env
    cli("server", "stop", env=env, timeout=60)


def test_demo_starts_the_local_server_and_the_next_loop_reuses_it(tmp_path: Path, own_home: dict[str, str]):
    demo_dir = tmp_path / "autoresearch-demo"
    port = own_home["AUTORESEARCH_SERVER_PORT"]
    with both_cores_busy():
        result = cli("demo", "--dir", str(demo_dir), "--iterations", "1", "--time-budget", "2", env=own_home, timeout=800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"created the experiment {demo_dir}")
    plan = next(n for n, line in enumerate(lines) if line.startswith("research loop 'demo'"))
    ui = next(n for n, line in enumerate(lines) if line.startswith("watch it in the Prefect UI: "))
    assert ui > plan and f"http://127.0.0.1:{port}/flow-runs/flow-run/" in lines[ui]
    assert any(line.startswith("iter 0000  baseline  val_bpb ") for line in lines)
    assert any(line.startswith("iter 0001  ") for line in lines)
    assert f"next: autoresearch status --repo {demo_dir}" in lines
    assert "Traceback" not in result.stderr and "ERROR" not in result.stderr

    rows = ledger.read(demo_dir / "results.tsv", "val_bpb")
    assert len(rows) == 2 and rows[0].description == "baseline"

    home = Path(own_home["PREFECT_HOME"])
    state = json.loads((home / STATE_FILE).read_text())
    assert state["port"] == int(port)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as response:
        assert response.status == 200  # the server outlives the demo, as documented
    assert (home / "prefect.db").is_file()  # its data: under the user's Prefect home

    again = cli("run", "--repo", str(demo_dir), "--tag", "demo", "--iterations", "1", "--time-budget", "2", env=own_home)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "starting the local Prefect server" not in again.stdout
    assert json.loads((home / STATE_FILE).read_text())["pid"] == state["pid"]  # reused
    assert len(ledger.read(demo_dir / "results.tsv", "val_bpb")) == 3

    server_log = (home / LOG_FILE).read_text()
    assert "telemetry" not in server_log.lower() or "ERROR" not in server_log

    status = cli("server", "status", env=own_home)
    assert status.returncode == 0 and "running" in status.stdout and f"127.0.0.1:{port}" in status.stdout
    stopped = cli("server", "stop", env=own_home, timeout=60)
    assert stopped.returncode == 0 and f"pid {state['pid']}" in stopped.stdout
    assert "not running" in cli("server", "status", env=own_home).stdout


def test_a_server_on_another_port_serves_a_ui_that_reaches_its_api(own_home: dict[str, str]):
    port = own_home["AUTORESEARCH_SERVER_PORT"]
    started = cli("server", "start", "--port", port, env={**own_home, "AUTORESEARCH_SERVER_PORT": ""}, timeout=400)
    assert started.returncode == 0, started.stderr
    assert f"UI http://127.0.0.1:{port}" in started.stdout
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ui-settings", timeout=10) as response:
        settings = json.loads(response.read())
    assert settings["api_url"] == f"http://127.0.0.1:{port}/api"
    again = cli("server", "start", "--port", port, env=own_home)
    assert again.returncode == 0 and "already running" in again.stdout
