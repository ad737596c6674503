"""The real thing: `autoresearch init`, `prepare`, `run` and `status` on the bundled experiment with real torch training."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli, git, run_loop

from autoresearch import ledger

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]


def test_init_prepare_run_resume_on_the_bundled_experiment(tmp_path: Path):
    repo = tmp_path / "tiny"
    assert cli("init", str(repo)).returncode == 0
    prepare_py = (repo / "prepare.py").read_text()

    not_prepared = cli("run", "--repo", str(repo), "--iterations", "1", env={"AUTORESEARCH_CACHE": str(tmp_path / "none")})
    assert not_prepared.returncode == 2 and f"autoresearch prepare --repo {repo}" in not_prepared.stderr

    assert cli("prepare", "--repo", str(repo)).returncode == 0
    result = cli("run", "--repo", str(repo), "--tag", "demo", "--iterations", "2", "--time-budget", "2")
    assert result.returncode == 0, result.stderr
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert len(rows) == 3
    assert (rows[0].description, rows[0].status) == ("baseline", "keep")
    assert 0 < rows[0].value < 8.0 and rows[0].memory_gb > 0
    assert git(repo, "rev-parse", "--short=7", "autoresearch/demo") == [r for r in rows if r.status == "keep"][-1].commit
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    assert (repo / "prepare.py").read_text() == prepare_py

    run_loop(repo, "demo", iterations=1, time_budget=2)  # resumed (in this process: the CLI's resume is in test_loop)
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert len(rows) == 4 and [r.description for r in rows].count("baseline") == 1

    status = cli("status", "--repo", str(repo))
    assert status.returncode == 0 and "baseline" in status.stdout and "best" in status.stdout
