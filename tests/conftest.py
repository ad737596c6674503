"""Test session: a real `prefect server` (SQLite, free loopback port) for every test, started and stopped here.

The environment is set at import, before any test module imports prefect, so in-process flows and the
CLI subprocesses that tests start all talk to the same server and keep results in the same PREFECT_HOME.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import postgres
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


SESSION_DIR = Path(tempfile.mkdtemp(prefix="autoresearch-tests-"))
PORT = _free_port()
os.environ.update(
    {
        "PREFECT_HOME": str(SESSION_DIR / "prefect"),
        "PREFECT_API_URL": f"http://127.0.0.1:{PORT}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        # the loop's own lines (resume notes, the summary) are INFO and must reach the API, as with Prefect's defaults
        "PREFECT_LOGGING_LOGGERS_PREFECT_FLOW_RUNS_LEVEL": "INFO",
        "AUTORESEARCH_CACHE": str(SESSION_DIR / "tiny-cache"),
        "AUTORESEARCH_HOME": str(SESSION_DIR / "home"),  # workers' clones and slot locks: this session's own
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
)

# Prefect configures logging when its flow API is first imported, replacing the root logger's handlers: done now,
# not inside the first test that runs a flow, whose log capture (caplog) it would otherwise remove.
import prefect.main  # noqa: E402, F401


@pytest.fixture(scope="session", autouse=True)
def prefect_server():
    with postgres.server_database() as database:  # AUTORESEARCH_TEST_DB=postgresql: a PostgreSQL-backed server
        yield from _serve(database)


def _serve(database: dict[str, str]):
    log = open(SESSION_DIR / "server.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(PORT)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **database},
    )
    deadline = time.monotonic() + 300  # a busy shared machine can take minutes
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()  # never left behind
            raise RuntimeError(f"prefect server did not start; see {SESSION_DIR / 'server.log'}")
        time.sleep(0.3)
    yield os.environ["PREFECT_API_URL"]
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


# --- a fast, real experiment: train.py is a real subprocess whose metric depends on its constants -------

FAST_TRAIN = textwrap.dedent(
    '''\
    """A stand-in for training: the metric is a smooth function of the constants (best at LR 0.1, DEPTH 6)."""
    import math
    import os
    import time

    LEARNING_RATE = 0.04  # learning rate
    DEPTH = 4  # layers
    WARMUP_RATIO = 0.1

    mode = os.environ.get("FAKE_MODE", "")
    if os.environ.get("FAKE_TAMPER"):  # a misbehaving experiment that writes to the read-only file
        with open(os.environ["FAKE_TAMPER"], "a") as handle:
            handle.write("# tampered\\n")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))
    val = 1.0 + abs(math.log(LEARNING_RATE / 0.1)) * 0.1 + abs(DEPTH - 6) * 0.01 + WARMUP_RATIO * 0.01
    print("step 00001 (100.0%) | loss: 1.0")
    if mode == "exit":
        raise SystemExit(3)
    if mode == "fail":
        print("FAIL")
        raise SystemExit(0)
    print("---")
    if mode == "nan":
        val = float("nan")
    if mode != "nometric":
        print(f"val_bpb:          {val:.6f}")
    print(f"peak_vram_mb:     {1024.0 * DEPTH:.1f}")
    '''
)


def make_repo(path: Path, train: str = FAST_TRAIN, config: str | None = None, data: Path | None = None) -> Path:
    """A committed experiment repo with train.py, prepare.py and autoresearch.toml."""
    data = data or path.parent / f"{path.name}-data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "prepared").write_text("ok")
    path.mkdir(parents=True)
    (path / "train.py").write_text(train)
    (path / "prepare.py").write_text("MAX_SEQ_LEN = 64  # read-only\n")
    (path / "autoresearch.toml").write_text(
        config if config is not None else f'command = "{{python}} train.py"\ndata_check = "{data}"\ntimeout_seconds = 60\n'
    )
    git(path, "init", "-q", "-b", "main")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "experiment")
    return path


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run the real `autoresearch` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "autoresearch.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_loop(repo: Path, tag: str, env: dict[str, str] | None = None, **parameters):
    """The research loop in this process: the flow `autoresearch run` calls, under the same local-mode settings,
    against the session's server. Returns its summary; a user error is raised, not printed.

    For tests of what the loop does; what the CLI adds (flags, exit codes, one-line errors, signals) is tested
    through `cli`. Each CLI subprocess pays Prefect's start-up (seconds); this pays it once per session.
    env: variables set for this call only (the training and the proposer see them, as with `cli(env=...)`).
    """
    from autoresearch.flows.research_loop import research_loop

    from autoresearch import iteration
    from autoresearch.prefect_tuning import local_mode

    iteration._workspace.cache_clear()  # like a new process: the configuration is read again (env may differ)
    with environment(env or {}), local_mode():
        return research_loop(repo=str(repo), tag=tag, **parameters)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def install_proposer(directory: Path, name: str, target: str) -> Path:
    """A real `autoresearch.proposers` entry point (`name = module:Class`): a dist-info in `directory`.

    Put `directory` on sys.path (monkeypatch.syspath_prepend) or PYTHONPATH for the proposer to be found.
    """
    info = directory / f"autoresearch_test_{name.replace('-', '_')}-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: autoresearch-test-{name}\nVersion: 0\n")
    (info / "entry_points.txt").write_text(f"[autoresearch.proposers]\n{name} = {target}\n")
    return directory


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "exp")
