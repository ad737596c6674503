"""Deployed mode against the session's real `prefect server`, with real process workers started here:
`autoresearch deploy`, `autoresearch worker --slots 2`, deployment runs for the loop, its iterations and
every training, the window of candidates of --parallel, the hard timeout, and a worker killed mid-training then retried."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from autoresearch.deployments.definitions import DEPLOYMENTS, RESEARCH_LOOP
from conftest import FAST_TRAIN, SESSION_DIR, cli, git, make_repo
from prefect.client.orchestration import get_client

from autoresearch import ledger, runs, train_report
from autoresearch.workspace import Workspace

WORKER_HOME = SESSION_DIR / "worker-home"  # where GPU workers keep their clones of remote repos
WORKER_ENV = {
    "PREFECT_WORKER_QUERY_SECONDS": "1",
    "PREFECT_WORKER_PREFETCH_SECONDS": "1",
    "AUTORESEARCH_HOME": str(WORKER_HOME),
    "PREFECT_LOGGING_LEVEL": "INFO",  # the runs' info lines reach the API, as in production
}


@pytest.fixture(scope="module")
def workers():
    """Deployments, then two CPU training slots and a cpu-pool worker, stopped at the end of the module."""
    deployed = cli("deploy")
    assert deployed.returncode == 0, deployed.stderr
    log = open(SESSION_DIR / "workers.log", "wb")
    group = subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", "worker", "--slots", "2", "--query-seconds", "1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **WORKER_ENV},
        start_new_session=True,
    )
    yield group
    group.send_signal(signal.SIGINT)
    try:
        group.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(group.pid, signal.SIGKILL)
    log.close()


def run_deployed(repo: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return cli("run", "--deployed", "--wait", "--repo", str(repo), *args, timeout=timeout)


flow_runs = runs.find
pytestmark = pytest.mark.slow  # a real server, workers and deployment runs: minutes


def check_invariants(repo: Path, tag: str, expected_rows: int) -> list[ledger.LedgerRow]:
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert len(rows) == expected_rows
    assert len({row.commit for row in rows}) == len(rows), "a commit was logged twice"
    last_keep = ledger.last_keep(rows)
    assert git(repo, "rev-parse", "--short=7", f"autoresearch/{tag}") == last_keep.commit
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""
    return rows


def test_deploy_is_idempotent(workers, tmp_path):
    """Twice, with a nightly schedule: the same pools and deployments, one schedule, defaults set."""
    repo = make_repo(tmp_path / "exp")
    args = ("deploy", "--repo", str(repo), "--schedule", "0 22 * * *", "--stop-after", "10h")
    try:
        first, second = cli(*args), cli(*args)
        assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
        assert first.stdout == second.stdout  # same deployment ids
        with get_client(sync_client=True) as client:
            pools = {pool.name: pool for pool in client.read_work_pools()}
            assert {"cpu", "gpu"} <= set(pools) and pools["gpu"].type == "process"
            for definition in DEPLOYMENTS:
                found = client.read_deployment_by_name(definition.full_name)
                assert found.work_pool_name == definition.pool and found.entrypoint == definition.entrypoint
            loop = client.read_deployment_by_name(RESEARCH_LOOP.full_name)
            assert len(loop.schedules) == 1 and loop.schedules[0].schedule.cron == "0 22 * * *"
            assert loop.parameters == {"repo": str(repo.resolve()), "stop_after": "10h"}
    finally:
        assert cli("deploy").returncode == 0  # back to no schedule and no defaults, for the other tests
    with get_client(sync_client=True) as client:
        assert client.read_deployment_by_name(RESEARCH_LOOP.full_name).schedules == []


@pytest.mark.timeout(600)
def test_deployed_loop_trains_the_bundled_experiment_on_worker_slots(workers, tmp_path):
    repo = tmp_path / "tiny"
    assert cli("init", str(repo)).returncode == 0
    prepared = cli("prepare", "--repo", str(repo))
    assert prepared.returncode == 0, prepared.stderr
    result = run_deployed(repo, "--tag", "dep", "--iterations", "2", "--time-budget", "2", timeout=540)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "/runs/flow-run/" in result.stdout and "ran 2 iterations" in result.stdout
    rows = check_invariants(repo, "dep", 3)
    assert rows[0].description == "baseline" and rows[0].status == "keep" and 1.0 < rows[0].value < 8.0
    trainings = flow_runs("train-on-gpu", "dep")
    assert len(trainings) == 3 and all(run.state.is_completed() for run in trainings)
    assert all(run.deployment_id is not None for run in trainings)
    for row in rows:  # each training run carries its iteration's decision
        assert [row.status in run.tags for run in trainings if f"train {row.commit}" in run.name] == [True]
    iterations = flow_runs("experiment-iteration", "dep")
    # one slot's window is 2: iterations 1 and 2 run at the same time, in either order
    assert sorted(run.name.split(" · ")[1] for run in iterations) == ["iter 0000", "iter 0001", "iter 0002"]
    for number, row in enumerate(rows):
        assert (repo / ".autoresearch" / "logs" / "dep" / f"{number:04d}-{row.commit}.log").exists()


EVERY_EDIT_HELPS = """\
import os
import time

ALPHA = 1
BETA = 2
GAMMA = 3
DELTA = 4
EPSILON = 5

ORIGINAL = (1, 2, 3, 4, 5)
changed = sum(a != b for a, b in zip((ALPHA, BETA, GAMMA, DELTA, EPSILON), ORIGINAL))
go = os.environ.get("FAKE_GO")  # candidates wait for the test's go (the baseline does not)
waited_until = time.time() + 600
while changed and go and not os.path.exists(go) and time.time() < waited_until:
    time.sleep(0.2)
time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))
print("---")
print(f"val_bpb:          {1.0 - 0.01 * changed:.6f}")
print("peak_vram_mb:     1024.0")
"""


@pytest.mark.timeout(600)
def test_the_window_queues_the_next_candidates_while_both_slots_train(workers, tmp_path):
    """--parallel 2: four candidates in flight after the baseline, so a slot's next training is queued
    while it trains, its process started and waiting for the slot. Every edit helps here, so the first of a
    window keeps and the others, judged against the baseline they started from, keep too: they are logged
    as discards naming the keep that moved the branch."""
    go = tmp_path / "go"
    repo = make_repo(
        tmp_path / "exp",
        train=EVERY_EDIT_HELPS,
        config=f'command = "FAKE_GO={go} FAKE_TRAIN_SECONDS=5 {{python}} train.py"\ndata_check = "{tmp_path}"\n'
        "timeout_seconds = 90\n",
    )
    loop = subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", "run", "--deployed", "--wait", "--repo", str(repo), "--tag", "win"]
        + ["--iterations", "6", "--parallel", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # the first four candidates all get a run on a slot: two train (held at the go), two wait for their slot
    _wait_for(lambda: len([r for r in flow_runs("train-on-gpu", "win") if r.state.is_running()]) == 4 or None, 420)
    go.touch()
    output, _ = loop.communicate(timeout=420)
    assert loop.returncode == 0, output
    assert "ran 6 iterations" in output
    rows = check_invariants(repo, "win", 7)
    trainings = sorted(flow_runs("train-on-gpu", "win"), key=lambda run: run.name)
    assert sorted(run.name.rsplit(" ", 1)[1] for run in trainings) == sorted(row.commit for row in rows)
    assert all(run.state.is_completed() for run in trainings)  # exactly one training per row, one row per training
    # the window: the trainings of candidates 3 and 4 were queued before both slots finished 1 and 2
    first, second, third, fourth = trainings[1:5]
    assert max(third.created, fourth.created) < max(first.end_time, second.end_time)
    reports = {run.id: train_report.fetch(run.id) for run in trainings}
    spans = [(report.started_at, report.ended_at) for report in reports.values()]
    assert _most_at_once(spans) == 2, "two slots, two trainings at a time"
    for slot in (0, 1):  # the hand-over: a slot's next run was started and ready before its training ended
        mine = sorted((r for r in trainings if reports[r.id].slot == slot), key=lambda r: reports[r.id].started_at)
        assert _most_at_once([(reports[r.id].started_at, reports[r.id].ended_at) for r in mine]) == 1
        handovers = [(b.start_time.timestamp() - reports[a.id].ended_at) for a, b in zip(mine, mine[1:], strict=False)]
        assert any(ahead < 0 for ahead in handovers), f"slot {slot}: next run started (s after the slot freed) {handovers}"
        assert any(reports[r.id].waited_seconds > 0 for r in mine), "no run waited ready for its slot"
    reasons = Workspace(repo, "win").recorded("reasons")
    assert [row.status for row in rows[:2]] == ["keep", "keep"]
    for row in rows[2:5]:  # started from the baseline, judged after iteration 1 moved the branch
        assert row.status == "discard" and f"{rows[1].commit} was kept since this candidate started" in reasons[row.commit]
    keeps = [row.commit for row in rows if row.status == "keep"]
    chain = git(repo, "rev-list", "--first-parent", "--abbrev-commit", "--abbrev=7", "autoresearch/win").split()
    assert [commit for commit in reversed(chain) if commit in keeps] == keeps, "each keep builds on the one before"
    assert int(git(repo, "rev-list", "--count", "--merges", "autoresearch/win")) == 0


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    return most


def test_workers_fetch_commits_from_a_git_remote(workers, tmp_path):
    """--remote: each experiment commit is pushed to a bare repo; the worker trains in its own clone."""
    repo = make_repo(tmp_path / "exp")
    remote = tmp_path / "remote.git"
    git(tmp_path, "clone", "-q", "--bare", str(repo), str(remote))
    result = run_deployed(repo, "--tag", "rem", "--iterations", "1", "--remote", f"file://{remote}")
    assert result.returncode == 0, result.stdout + result.stderr
    rows = check_invariants(repo, "rem", 2)
    pushed = git(remote, "for-each-ref", "--format=%(refname)", "refs/autoresearch/rem/")
    assert rows[1].commit in pushed  # the experiment commit reached the remote
    clones = [path for path in (WORKER_HOME / "clones").iterdir() if (path / ".autoresearch" / "logs" / "rem").exists()]
    assert len(clones) == 1, "the worker did not train in its own clone"
    local_log = repo / ".autoresearch" / "logs" / "rem" / f"0001-{rows[1].commit}.log"
    assert "val_bpb:" in local_log.read_text()  # the log's tail came back with the result
    assert not (repo / ".autoresearch" / "worktrees").exists()  # nothing trained in the repo itself


def _logs(run_id) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        return "\n".join(log.message for log in client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))))


def test_a_retried_loop_run_finishes_what_was_asked_and_no_more(workers, tmp_path):
    """Retry of a Completed loop run (the UI offers it): --iterations counts across attempts, so it adds nothing."""
    repo = make_repo(tmp_path / "exp")
    loop_id = runs.start(RESEARCH_LOOP.full_name, {"repo": str(repo), "tag": "again", "iterations": 1}, as_subflow=False)
    first = runs.wait(loop_id)
    assert first.state.is_completed(), first.state
    check_invariants(repo, "again", 2)
    assert first.name == "again · research loop"  # named and tagged like its iterations
    assert "again" in first.tags and any(tag.startswith("loop-") for tag in first.tags)
    assert [run.id for run in flow_runs("research-loop", "again")] == [loop_id]  # filtering by tag finds it

    time.sleep(3)
    runs.retry(loop_id)
    second = runs.wait(loop_id)
    assert second.state.is_completed() and second.run_count == 2, second.state
    assert runs.result(second).iterations_run == 1
    check_invariants(repo, "again", 2)  # nothing more was trained
    resumed = "attempt 2 of this loop run: earlier attempts finished 1 idea(s) of --iterations 1"
    _wait_for(lambda: resumed in _logs(loop_id), 60)  # logs reach the API in batches


GO = """\
go = os.environ.get("FAKE_GO")
waited_until = time.time() + 600
while go and not os.path.exists(go) and time.time() < waited_until:
    time.sleep(0.2)
"""


@pytest.mark.timeout(1200)
def test_a_loop_run_that_collides_with_a_running_loop_on_the_same_repo_ends_cancelled(workers, tmp_path):
    """A schedule firing while the last loop still runs: Prefect's limit (CANCEL_NEW) or our own check cancels it.
    The running loop's training waits for a go file written once the second run has ended, so the two
    always overlap however slowly a loaded machine starts the second one."""
    go = tmp_path / "go"
    sleep = 'time.sleep(float(os.environ.get("FAKE_TRAIN_SECONDS", "0")))'
    repo = make_repo(
        tmp_path / "exp",
        train=FAST_TRAIN.replace(sleep, GO + sleep),
        config=f'command = "FAKE_GO={go} {{python}} train.py"\ndata_check = "{tmp_path}"\ntimeout_seconds = 600\n',
    )
    parameters = {"repo": str(repo), "tag": "busy", "iterations": 1}
    running = runs.start(RESEARCH_LOOP.full_name, parameters, as_subflow=False)
    _wait_for(lambda: [r for r in flow_runs("train-on-gpu", "busy") if r.state.is_running()], 600)
    by_us = runs.wait(runs.start(RESEARCH_LOOP.full_name, parameters, as_subflow=False))
    go.touch()
    assert by_us.state.is_cancelled(), by_us.state
    assert "busy · research loop" in by_us.state.message and str(running) in by_us.state.message
    assert runs.wait(running).state.is_completed()
    check_invariants(repo, "busy", 2)
    # the limit is only removed once no run holds its slot: Prefect 3.9 cannot finish a run whose limit went away
    assert cli("deploy", "--repo", str(repo), "--schedule", "0 3 1 1 *").returncode == 0  # one loop at a time
    go.unlink()
    try:
        running = runs.start(RESEARCH_LOOP.full_name, parameters, as_subflow=False)
        _wait_for(lambda: [r for r in flow_runs("train-on-gpu", "busy") if r.state.is_running()], 600)
        by_prefect = runs.wait(runs.start(RESEARCH_LOOP.full_name, parameters, as_subflow=False))
        go.touch()
        assert by_prefect.state.is_cancelled(), by_prefect.state
        assert runs.wait(running).state.is_completed()
    finally:
        go.touch()
        assert cli("deploy").returncode == 0  # no schedule, no limit
    check_invariants(repo, "busy", 3)


def test_a_pool_without_live_workers_is_named_in_the_log_and_as_an_event(workers):
    from prefect.client.schemas.actions import WorkPoolCreate

    from autoresearch.pool_health import NO_WORKER, check_pickup

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="empty-pool", type="process"), overwrite=True)
    waiting = flow_runs("research-loop", "busy")[0]  # any run stands in for the one that waits
    line = check_pickup("empty-pool", waiting, 240)
    assert "no live worker on pool 'empty-pool'" in line and "240 s" in line
    assert "live worker(s), all busy" in check_pickup("cpu", waiting, 240)  # the workers fixture's cpu worker
    events = _wait_for(lambda: _events(NO_WORKER), 30)
    assert any(event.payload["pool"] == "empty-pool" for event in events)


def _events(name: str) -> list:
    from prefect.events.filters import EventFilter, EventNameFilter

    with get_client(sync_client=True) as client:
        return client.read_events(EventFilter(event=EventNameFilter(name=[name])), limit=50).events  # the server max


SPAWNER = """\
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "deployed-timeout-marker"])
time.sleep(300)
"""


def test_hard_timeout_kills_a_deployed_training_and_its_children(workers, tmp_path):
    repo = make_repo(
        tmp_path / "exp",
        train=SPAWNER,
        config=f'command = "{{python}} train.py"\ndata_check = "{tmp_path}"\ntimeout_seconds = 3\n',
    )
    result = run_deployed(repo, "--tag", "tmo", "--iterations", "1")
    assert result.returncode == 2
    assert "baseline run crashed (timed out after 3 s" in result.stderr, result.stderr
    rows = ledger.read(repo / "results.tsv", "val_bpb")
    assert [(row.status, row.value) for row in rows] == [("crash", 0.0)]
    left = subprocess.run(["pgrep", "-f", "deployed-timeout-marker"], capture_output=True, text=True).stdout.split()
    assert left == [], "a child of the timed-out training survived"


def test_worker_killed_mid_training_then_retried_through_the_api(workers, tmp_path):
    seconds = tmp_path / "train-seconds"
    seconds.write_text("120")
    repo = make_repo(
        tmp_path / "exp",
        config=f'command = "FAKE_TRAIN_SECONDS=$(cat {seconds}) {{python}} train.py"\ndata_check = "{tmp_path}"\n'
        "timeout_seconds = 300\n",
    )
    parameters = {"repo": str(repo), "tag": "kill", "iterations": 1, "infra_retries": 0}
    loop_id = runs.start(RESEARCH_LOOP.full_name, parameters, as_subflow=False)

    training = _wait_for(lambda: [r for r in flow_runs("train-on-gpu", "kill") if r.state.is_running()], 120)[0]
    time.sleep(2)  # mid-training
    host, _, pid = training.infrastructure_pid.rpartition(":")
    worker_pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    assert "worker" in Path(f"/proc/{worker_pid}/cmdline").read_text()
    seconds.write_text("0")
    os.kill(worker_pid, signal.SIGKILL)  # the GPU box dies: its worker and the run it was executing
    os.kill(int(pid), signal.SIGKILL)

    loop = runs.wait(loop_id)
    assert loop.state.is_failed(), loop.state
    assert not (repo / "results.tsv").exists() or ledger.read(repo / "results.tsv", "val_bpb") == []
    [iteration] = flow_runs("experiment-iteration", "kill")
    assert iteration.state.is_failed()

    time.sleep(3)  # a retry within ~1.5 s of a crash can be overwritten by the worker
    runs.retry(iteration.id)  # what the UI's Retry button sends
    assert runs.wait(iteration.id).state.is_completed()
    check_invariants(repo, "kill", 1)

    runs.retry(loop_id)  # the loop, retried, continues from Prefect state plus results.tsv
    assert runs.wait(loop_id).state.is_completed()
    rows = check_invariants(repo, "kill", 2)
    assert rows[0].description == "baseline"
    assert len(flow_runs("experiment-iteration", "kill")) == 2  # the retried one, then iteration 1


def _wait_for(find, seconds: float):
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        found = find()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"nothing found within {seconds} s")
