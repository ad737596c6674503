"""Noise-aware keeps and --confirm: the pure rules, then whole loops through the real CLI.

The experiment here prints a scripted sequence of metric values (one per training run, counted in a file
outside the repo), so each test knows exactly what every run, repeat and confirmation will measure.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from conftest import cli, git, make_repo, run_loop
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import ArtifactSort

from autoresearch import decision, ledger, noise
from autoresearch.models import LedgerRow

pytestmark = pytest.mark.timeout(240)

SEQUENCE_TRAIN = textwrap.dedent(
    """\
    import os
    from pathlib import Path

    LEARNING_RATE = 0.04
    DEPTH = 4

    counter = Path(os.environ["SEQ_COUNTER"])
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    values = [float(v) for v in os.environ["SEQ_VALUES"].split(",")]
    print("---")
    print(f"val_bpb:          {values[min(n, len(values) - 1)]:.6f}")
    print("peak_vram_mb:     100.0")
    """
)


def row(description: str, value: float, status: str = "discard") -> LedgerRow:
    return LedgerRow(commit="abcdef0", value=value, memory_gb=0.1, status=status, description=description)


# --- pure rules -----------------------------------------------------------------------------------


def test_noise_repeats_follow_only_a_kept_baseline():
    baseline = row("baseline", 1.0, "keep")
    assert noise.next_repeat([baseline], 2) == 1
    assert noise.next_repeat([baseline, row("baseline (noise repeat 1)", 1.01)], 2) == 2
    assert (
        noise.next_repeat([baseline, row("baseline (noise repeat 1)", 1.01), row("baseline (noise repeat 2)", 0.99)], 2) is None
    )
    assert noise.next_repeat([baseline, row("DEPTH 4 -> 5", 0.9)], 2) is None  # never inserted after ideas
    assert noise.next_repeat([row("baseline", 0.0, "crash")], 2) is None
    assert noise.next_repeat([baseline], 0) is None


def test_sigma_and_thresholds():
    rows = [row("baseline", 1.0, "keep"), row("baseline (noise repeat 1)", 1.01), row("baseline (noise repeat 2)", 0.99)]
    assert noise.sigma(rows) == pytest.approx(0.01)
    assert noise.sigma(rows[:1]) is None
    assert noise.sigma(rows[:1] + [row("baseline (noise repeat 1)", 0.0, "crash")]) is None  # crashes measure nothing
    assert noise.thresholds(0.001, 0.005, None) == (0.001, 0.005)
    assert noise.thresholds(0.001, 0.005, 0.01) == (0.02, 0.02)
    assert noise.thresholds(0.001, 0.05, 0.01) == (0.02, 0.05)


def test_noise_turns_a_keep_into_a_discard():
    kept = decision.decide(new=0.99, baseline=1.0, complexity=0)
    small, big = noise.thresholds(0.001, 0.005, 0.01)
    noisy = decision.decide(new=0.99, baseline=1.0, complexity=0, small_gain=small, big_gain=big)
    assert (kept.status, noisy.status) == ("keep", "discard")
    assert "within 0.02" in noisy.reason


def test_confirm_keeps_only_when_both_runs_pass():
    first = decision.decide(new=0.95, baseline=1.0, complexity=0)
    passes = decision.decide(new=0.96, baseline=1.0, complexity=0)
    fails = decision.decide(new=1.0, baseline=1.0, complexity=0)
    assert decision.confirm(first, passes, (0.95, 0.96), None).status == "keep"
    rejected = decision.confirm(first, fails, (0.95, 1.0), None)
    assert rejected.status == "discard" and rejected.reason.startswith("not confirmed (runs 0.950000 and 1.000000)")
    crashed = decision.confirm(first, None, (0.95, None), "exit code 1")
    assert crashed.status == "discard" and "second run crashed (exit code 1)" in crashed.reason


# --- whole loops ----------------------------------------------------------------------------------


def sequence_repo(tmp_path: Path, extra_config: str = "") -> Path:
    data = tmp_path / "data"
    config = f'command = "{{python}} train.py"\ndata_check = "{data}"\ntimeout_seconds = 60\n{extra_config}'
    return make_repo(tmp_path / "exp", train=SEQUENCE_TRAIN, config=config, data=data)


def run(repo: Path, tmp_path: Path, values: str, **options):
    """The loop in this process (conftest.run_loop); the training reports `values` in turn."""
    env = {"SEQ_COUNTER": str(tmp_path / "counter"), "SEQ_VALUES": values}
    return run_loop(repo, "n", env, **options)


@pytest.mark.slow
def test_noise_repeats_measure_sigma_and_raise_the_bar(tmp_path: Path):
    repo = sequence_repo(tmp_path, "noise_repeats = 2\n")
    run(repo, tmp_path, "1.0,1.01,0.99,0.99,0.95", iterations=2)
    entries = ledger.read(repo / "results.tsv", "val_bpb")
    assert [(r.description, r.value, r.status) for r in entries[:3]] == [
        ("baseline", 1.0, "keep"),
        ("baseline (noise repeat 1)", 1.01, "discard"),
        ("baseline (noise repeat 2)", 0.99, "discard"),
    ]
    assert [(r.value, r.status) for r in entries[3:]] == [(0.99, "discard"), (0.95, "keep")]  # 0.01 < 2 sigma
    state = json.loads((repo / ".git/autoresearch/n.json").read_text())
    assert state["noise"]["sigma"] == pytest.approx(0.01)
    assert "within 0.02" in state["reasons"][entries[3].commit]
    tree = git(repo, "rev-parse", f"{entries[0].commit}^{{tree}}")
    assert all(git(repo, "rev-parse", f"{r.commit}^{{tree}}") == tree for r in entries[1:3])  # the same code
    assert len({r.commit for r in entries}) == len(entries)
    assert git(repo, "rev-parse", "--short=7", "autoresearch/n") == entries[4].commit

    status = cli("status", "--repo", str(repo))
    assert "noise: sigma 0.010000" in status.stdout
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(sort=ArtifactSort.CREATED_DESC, limit=20)
    assert any(f"`{entries[4].commit}`" in (a.data or "") and "sigma 0.010000" in (a.data or "") for a in artifacts)

    run(repo, tmp_path, "0.95", iterations=1)  # resume: no more repeats, sigma still applies
    entries = ledger.read(repo / "results.tsv", "val_bpb")
    assert len(entries) == 6 and noise.repeat_number(entries[5].description) is None


@pytest.mark.slow
def test_confirm_retrains_a_would_be_keep(tmp_path: Path):
    repo = sequence_repo(tmp_path)
    run(repo, tmp_path, "1.0,0.95,1.0,0.95,0.96", iterations=2, confirm=True)
    entries = ledger.read(repo / "results.tsv", "val_bpb")
    assert [(r.value, r.status) for r in entries] == [(1.0, "keep"), (0.975, "discard"), (0.955, "keep")]
    reasons = json.loads((repo / ".git/autoresearch/n.json").read_text())["reasons"]
    assert reasons[entries[1].commit].startswith("not confirmed (runs 0.950000 and 1.000000)")
    assert reasons[entries[2].commit].startswith("confirmed (runs 0.950000 and 0.960000)")
    logs = sorted(p.name for p in (repo / ".autoresearch/logs/n").iterdir())
    assert f"0002-{entries[2].commit}-run1.log" in logs
    assert git(repo, "rev-parse", "--short=7", "autoresearch/n") == entries[2].commit
