"""A throwaway PostgreSQL cluster for the test session's `prefect server` (AUTORESEARCH_TEST_DB=postgresql).

initdb in a temporary directory, a free loopback port, trust authentication on loopback only; run as the
`postgres` user when the tests run as root (postgres refuses to run as root); stopped and removed at the end.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SELECTOR = "AUTORESEARCH_TEST_DB"
DATABASE = "prefect"


def wanted() -> bool:
    return os.environ.get(SELECTOR, "sqlite").lower() in ("postgres", "postgresql")


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"{name} not found: install PostgreSQL (Debian: apt-get install -y postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def cluster() -> Iterator[str]:
    """Start a cluster; yield its SQLAlchemy URL (asyncpg driver, as Prefect's server wants it)."""
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="autoresearch-pg-"))
    data, port = root / "data", _free_port()
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    run = lambda *args: subprocess.run(_as_owner(list(args), owner), check=True, capture_output=True, text=True)  # noqa: E731
    run(_binary("initdb"), "-D", str(data), "-A", "trust", "-U", DATABASE, "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    run(_binary("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "postgres.log"), "-w", "start")
    try:
        run(_binary("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", DATABASE, DATABASE)
        yield f"postgresql+asyncpg://{DATABASE}@127.0.0.1:{port}/{DATABASE}"
    finally:
        run(_binary("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def server_database() -> Iterator[dict[str, str]]:
    """The environment that points `prefect server` at the selected database (nothing for SQLite)."""
    if not wanted():
        yield {}
        return
    with cluster() as url:
        yield {"PREFECT_API_DATABASE_CONNECTION_URL": url}
