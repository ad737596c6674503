"""A throwaway experiment repo for the benchmarks: bench/fake_train.py as train.py, a read-only prepare.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

BENCH = Path(__file__).resolve().parent
TRAINING_SECONDS = re.compile(rb"^training_seconds:\s+([\d.]+)\s*$", re.MULTILINE)
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}


def make_repo(path: Path, timeout_seconds: float = 60, command: str = "{python} train.py") -> Path:
    """A committed repo at `path` (created) whose training is bench/fake_train.py; data check passes."""
    data = path / "data"
    data.mkdir(parents=True)
    (data / "prepared").write_text("ok\n")
    shutil.copy(BENCH / "fake_train.py", path / "train.py")
    (path / "prepare.py").write_text("MAX_SEQ_LEN = 64  # read-only\n")
    (path / ".gitignore").write_text("data/\nrun.log\nresults.tsv\n.autoresearch/\n__pycache__/\n")
    (path / "autoresearch.toml").write_text(
        f'command = "{command}"\ndata_check = "{data}"\ntimeout_seconds = {timeout_seconds}\n'
    )
    for args in (["init", "-q", "-b", "main"], ["add", "."], ["commit", "-q", "-m", "bench experiment"]):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True, env=_git_env())
    return path


def _git_env() -> dict[str, str]:
    return {**os.environ, **GIT_IDENTITY}


def training_seconds(log: Path) -> float:
    """The `training_seconds:` a fake training printed (0.0 if it printed none: a crash)."""
    match = TRAINING_SECONDS.search(log.read_bytes())
    return float(match.group(1)) if match else 0.0
