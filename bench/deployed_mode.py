"""Deployed mode on this machine: worker pickup latency, per-iteration overhead (slot gap), 2-slot utilisation.

Starts its own `prefect server` (temporary PREFECT_HOME, free port), `autoresearch deploy`, and
`autoresearch worker --slots 2`, then runs a deployed loop with a fake trainer that sleeps a fixed time:
    python bench/deployed_mode.py [--iterations 4] [--train-seconds 10] [--query-seconds 1] [--database postgresql]
`--database postgresql` runs the server on a throwaway PostgreSQL cluster (tests/postgres.py).
Prints a table and writes bench/results/deployed_mode[_postgresql].json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from bench.experiment import make_repo  # noqa: E402
from bench.loops import clean_env, hard_timeout  # noqa: E402
from bench.stack import CLI, prefect_stack  # noqa: E402
from bench.utilisation import slot_gaps, trainings_of  # noqa: E402


def sh(*args: str, env: dict) -> str:
    return subprocess.run(args, env=env, check=True, capture_output=True, text=True).stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=4)
    parser.add_argument("--train-seconds", type=float, default=10.0)
    parser.add_argument("--query-seconds", type=float, default=1.0)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-deployed-"))
    database = _postgres() if args.database == "postgresql" else nullcontext(None)
    with (
        database as url,
        prefect_stack(
            work, clean_env(work, args.train_seconds), slots=2, query_seconds=args.query_seconds, database_url=url
        ) as env,
    ):
        os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_")})  # the client below reads this server
        repo = make_repo(work / "exp", hard_timeout(args.train_seconds))
        started = time.monotonic()
        sh(
            *CLI,
            "run",
            "--deployed",
            "--wait",
            "--repo",
            str(repo),
            "--tag",
            "seq",
            "--iterations",
            str(args.iterations),
            env=env,
        )
        sequential_wall = time.monotonic() - started
        started = time.monotonic()
        sh(
            *CLI,
            "run",
            "--deployed",
            "--wait",
            "--repo",
            str(repo),
            "--tag",
            "seq",
            "--iterations",
            "2",
            "--parallel",
            "2",
            env=env,
        )
        parallel_wall = time.monotonic() - started
        report = measure(args, sequential_wall, parallel_wall)
    report["database"] = args.database
    print_table(report)
    out = ROOT / "bench" / "results" / f"deployed_mode{'' if args.database == 'sqlite' else '_postgresql'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _postgres():
    import postgres  # tests/postgres.py: initdb in a temp dir, a free port, stopped at the end

    return postgres.cluster()


def measure(args: argparse.Namespace, sequential_wall: float, parallel_wall: float) -> dict:
    from autoresearch.runs import find

    iterations = find("experiment-iteration", "seq")
    trainings = find("train-on-gpu", "seq")
    sequential, rounds = iterations[: args.iterations + 1], iterations[args.iterations + 1 :]
    pickups = [(run.start_time - run.expected_start_time).total_seconds() for run in iterations + trainings]
    per_iteration = [(run.end_time - run.start_time).total_seconds() for run in sequential]
    # deployed mode keeps the next training queued (the window), so what the loop costs a GPU per iteration
    # is the gap on its slot between one training's end and the next one's start (bench/utilisation.py)
    measured = {t.name: t for t in trainings_of("seq")}
    gaps = [
        gap["gap"]
        for gap in slot_gaps(sorted((measured[r.name] for r in trainings[1 : args.iterations + 1]), key=lambda t: t.started))
    ]
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
        "overhead_per_iteration_s_median": round(median(gaps), 2) if gaps else None,
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
