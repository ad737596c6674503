"""GPU hosts that share nothing with the loop's host but the Prefect API URL and a git remote.

Each "host" is `autoresearch worker --slots 1 --no-cpu` in its own mount namespace (`unshare --mount`),
with its own HOME, PREFECT_HOME, result storage and clone directory, and the loop's repository, the
test session's directory (PREFECT_HOME, server database) and pytest's temporary directories covered
by empty tmpfs mounts: reports, log tails and progress can only come back through the API or git.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from autoresearch.deployments.definitions import RESEARCH_LOOP
from conftest import SESSION_DIR, cli, git, make_repo

from autoresearch import ledger, runs

HOSTS = ("host-a", "host-b")
OUTSIDE = Path(tempfile.mkdtemp(prefix="autoresearch-hosts-"))  # the hosts' own disks, and the git remote


def _can_unshare() -> str | None:
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {OUTSIDE}"],
        capture_output=True,
        text=True,
    )
    return None if probe.returncode == 0 else f"unshare --mount with a tmpfs is not permitted here: {probe.stderr.strip()}"


pytestmark = pytest.mark.slow


def _host_command(name: str, slot: int, hidden: list[Path]) -> list[str]:
    own = OUTSIDE / name
    for sub in ("home", "prefect", "storage", "clones"):
        (own / sub).mkdir(parents=True, exist_ok=True)
    env = {
        "HOME": own / "home",
        "PREFECT_HOME": own / "prefect",
        "PREFECT_LOCAL_STORAGE_PATH": own / "storage",
        "AUTORESEARCH_HOME": own / "clones",
        "PREFECT_WORKER_QUERY_SECONDS": 1,
        "PREFECT_WORKER_PREFETCH_SECONDS": 1,
    }
    mounts = " && ".join(f"mount -t tmpfs tmpfs {path}" for path in hidden)
    check = " && ".join(f'[ -z "$(ls -A {path})" ]' for path in hidden)  # the loop's files are out of sight
    exports = " ".join(f"{key}={value}" for key, value in env.items())
    worker = f"{sys.executable} -m autoresearch.cli worker --slots 1 --first-slot {slot} --no-cpu --query-seconds 1"
    script = f"{mounts} && {check} && cd {own} && exec env {exports} {worker}"
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script]


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def kill_tree(pid: int) -> None:
    """The host goes away: SIGKILL to every process under it at once."""
    for member in _descendants(pid):
        try:
            os.kill(member, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    reason = _can_unshare()
    if reason:
        pytest.skip(reason)
    assert cli("deploy").returncode == 0
    hidden = [SESSION_DIR, tmp_path_factory.getbasetemp()]
    log = open(OUTSIDE / "workers.log", "wb")
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "autoresearch.cli", "worker", "--slots", "0", "--query-seconds", "1"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_WORKER_PREFETCH_SECONDS": "1"},
            start_new_session=True,
        )
    ]
    for slot, name in enumerate(HOSTS):
        started.append(
            subprocess.Popen(_host_command(name, slot, hidden), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )
    yield dict(zip(("loop-host", *HOSTS), started, strict=True))
    for process in started:
        kill_tree(process.pid)
        process.wait()
    log.close()


def _remote_repo(tmp_path: Path, name: str, config: str | None = None) -> tuple[Path, str]:
    repo = make_repo(tmp_path / "exp", config=config)
    remote = OUTSIDE / f"{name}.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    return repo, f"file://{remote}"


def _rows(repo: Path, tag: str, expected: int) -> list[ledger.LedgerRow]:
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert len(rows) == expected
    assert len({row.commit for row in rows}) == len(rows), "a commit was logged twice"
    assert git(repo, "rev-parse", "--short=7", f"autoresearch/{tag}") == ledger.last_keep(rows).commit
    return rows


def test_a_gpu_host_that_shares_only_the_api_and_git_trains_and_reports(hosts, tmp_path):
    repo, remote = _remote_repo(tmp_path, "apart")
    args = ("--tag", "apart", "--iterations", "2", "--remote", remote)
    result = cli("run", "--deployed", "--wait", "--repo", str(repo), *args, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = _rows(repo, "apart", 3)
    for number, row in enumerate(rows):  # each log's tail came back through the API
        assert "val_bpb:" in (repo / ".autoresearch" / "logs" / "apart" / f"{number:04d}-{row.commit}.log").read_text()
    assert not (repo / ".autoresearch" / "worktrees").exists()  # nothing trained in the loop's repo
    trained_on = {run.labels.get("prefect.worker.name", "") for run in runs.find("train-on-gpu", "apart")}
    assert trained_on and all(name.rsplit("-", 1)[-1] in ("slot0", "slot1") for name in trained_on)
    clones = [path for host in HOSTS for path in (OUTSIDE / host / "clones" / "clones").glob("*")]
    assert clones, "no host trained in its own clone"


def test_a_host_that_dies_mid_training_is_replaced_by_the_other_slot(hosts, tmp_path):
    knob = OUTSIDE / "train-seconds"  # a test device: how long trainings take, readable by the hosts
    knob.write_text("120")
    config = (
        f'command = "FAKE_TRAIN_SECONDS=$(cat {knob}) {{python}} train.py"\ndata_check = "{OUTSIDE}"\ntimeout_seconds = 300\n'
    )
    repo, remote = _remote_repo(tmp_path, "dies", config)
    parameters = {"repo": str(repo), "tag": "dies", "iterations": 1, "remote": remote}
    loop_id = runs.start(RESEARCH_LOOP.full_name, parameters, as_subflow=False)
    training = _wait_for(lambda: [r for r in runs.find("train-on-gpu", "dies") if r.state.is_running()], 180)[0]
    time.sleep(2)  # mid-training
    slot = training.labels["prefect.worker.name"].rsplit("-", 1)[-1]
    dying = HOSTS[int(slot.removeprefix("slot"))]
    knob.write_text("0")
    kill_tree(hosts[dying].pid)

    loop = runs.wait(loop_id)
    assert loop.state.is_completed(), loop.state
    _rows(repo, "dies", 2)
    trainings = runs.find("train-on-gpu", "dies")
    survivors = {r.labels.get("prefect.worker.name", "").rsplit("-", 1)[-1] for r in trainings if r.state.is_completed()}
    assert survivors == {"slot0", "slot1"} - {slot}, "the retry did not run on the other host's slot"
    assert [r.state.type.value for r in trainings].count("COMPLETED") == 2  # baseline and the one idea


def _wait_for(find, seconds: float):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        found = find()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"nothing found within {seconds} s")
