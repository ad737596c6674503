"""Deployed mode on this machine: worker pickup latency, per-iteration overhead, parallel-round utilisation.

Starts its own `prefect server` (temporary PREFECT_HOME, free port), `autoresearch deploy`, and
`autoresearch worker --slots 2`, then runs a deployed loop with a fake trainer that sleeps a fixed time:
    python bench/deployed_mode.py [--iterations 4] [--train-seconds 10] [--query-seconds 1]
Prints a table and writes bench/results/deployed_mode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
FAKE_TRAIN = """\
import os, time
LEARNING_RATE = 0.04
DEPTH = 4
time.sleep(float(os.environ.get("BENCH_TRAIN_SECONDS", "0")))
print("---")
print(f"val_bpb:          {1.0 + abs(LEARNING_RATE - 0.1) + abs(DEPTH - 6) * 0.01:.6f}")
print("peak_vram_mb:     1024.0")
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sh(*args: str, cwd: Path | None = None, env: dict | None = None) -> str:
    return subprocess.run(args, cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, train_seconds: float) -> Path:
    path.mkdir(parents=True)
    (path / "train.py").write_text(FAKE_TRAIN)
    (path / "prepare.py").write_text("MAX_SEQ_LEN = 64\n")
    (path / "autoresearch.toml").write_text(
        f'command = "BENCH_TRAIN_SECONDS={train_seconds} {{python}} train.py"\ndata_check = "{path}"\ntimeout_seconds = 600\n'
    )
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x", "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}
    sh("git", "init", "-q", "-b", "main", cwd=path, env=env)
    sh("git", "add", ".", cwd=path, env=env)
    sh("git", "commit", "-q", "-m", "bench", cwd=path, env=env)
    return path


def runs_of(flow: str, tag: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterTags
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            flow_run_filter=FlowRunFilter(tags=FlowRunFilterTags(all_=[tag])),
            sort=FlowRunSort.START_TIME_ASC,
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--train-seconds", type=float, default=10.0)
    parser.add_argument("--query-seconds", type=float, default=1.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-deployed-"))
    port = free_port()
    os.environ.update(
        PREFECT_HOME=str(work / "prefect"),
        PREFECT_API_URL=f"http://127.0.0.1:{port}/api",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_WORKER_QUERY_SECONDS=str(args.query_seconds),
    )
    cli = [sys.executable, "-m", "autoresearch.cli"]
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    workers = None
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        sh(*cli, "deploy")
        workers = subprocess.Popen([*cli, "worker", "--slots", "2", "--query-seconds", str(args.query_seconds)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(5)
        repo = make_repo(work / "exp", args.train_seconds)
        started = time.monotonic()
        sh(*cli, "run", "--deployed", "--wait", "--repo", str(repo), "--tag", "seq", "--iterations", str(args.iterations))
        sequential_wall = time.monotonic() - started
        started = time.monotonic()
        sh(*cli, "run", "--deployed", "--wait", "--repo", str(repo), "--tag", "seq", "--iterations", "2", "--parallel", "2")
        parallel_wall = time.monotonic() - started
        report = measure(args, sequential_wall, parallel_wall)
    finally:
        for process in (workers, server):
            if process and process.poll() is None:
                os.killpg(process.pid, signal.SIGINT if process is workers else signal.SIGTERM)
                try:
                    process.wait(timeout=40)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
    print_table(report)
    out = ROOT / "bench" / "results" / "deployed_mode.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def measure(args: argparse.Namespace, sequential_wall: float, parallel_wall: float) -> dict:
    iterations = runs_of("experiment-iteration", "seq")
    trainings = runs_of("train-on-gpu", "seq")
    sequential, rounds = iterations[: args.iterations + 1], iterations[args.iterations + 1 :]
    pickups = [(run.start_time - run.expected_start_time).total_seconds() for run in iterations + trainings]
    per_iteration = [(run.end_time - run.start_time).total_seconds() for run in sequential]
    # the gaps between one iteration's end and the next one's start belong to the loop
    gaps = [(b.start_time - a.end_time).total_seconds() for a, b in zip(sequential, sequential[1:], strict=False)]
    overhead = [duration - args.train_seconds for duration in per_iteration]
    round_trainings = trainings[args.iterations + 1 :]
    round_wall = (max(r.end_time for r in rounds) - min(r.start_time for r in rounds)).total_seconds()
    train_busy = sum((r.end_time - r.start_time).total_seconds() for r in round_trainings)
    return {
        "machine": f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}",
        "train_seconds": args.train_seconds,
        "worker_query_seconds": args.query_seconds,
        "pickup_latency_s_median": round(median(pickups), 2),
        "pickup_latency_s_max": round(max(pickups), 2),
        "iteration_run_s_median": round(median(per_iteration), 2),
        "overhead_per_iteration_s_median": round(median(overhead) + (median(gaps) if gaps else 0.0), 2),
        "loop_gap_between_iterations_s_median": round(median(gaps), 2) if gaps else None,
        "sequential_wall_s": round(sequential_wall, 1),
        "parallel_round_wall_s": round(round_wall, 1),
        "parallel_train_run_seconds": round(train_busy, 1),
        "parallel_utilisation_train_runs": round(train_busy / (2 * round_wall), 3),
        "parallel_utilisation_training": round(2 * args.train_seconds / (2 * round_wall), 3),
        "parallel_command_wall_s": round(parallel_wall, 1),
    }


def print_table(report: dict) -> None:
    width = max(len(key) for key in report)
    for key, value in report.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
