"""Deployed mode's GPU slot utilisation: 2 slots, a fake trainer, the window of candidates (--parallel 2).

    python -m bench.utilisation [--budgets 60] [--iterations 8] [--proposers mutate,slow] [--long]

One throwaway stack (bench/stack.py: `prefect server`, `autoresearch deploy`, `autoresearch worker --slots 2`)
runs one deployed loop per (budget, proposer); `slow` is bench/slow_proposer.py (20 s per idea), installed as
an entry point the workers' processes find through PYTHONPATH. `--long` adds the 300 s budget.

Measured from the `train-on-gpu` runs' own start/end timestamps (the API's, not the loop's):
- utilisation = sum of training run seconds / (slots x wall), wall from the first candidate training's start
  to the last one's end (the baseline trains alone by protocol: `whole` counts it too);
- slot gap = seconds between one training's end and the next one's start on the same slot worker: what the
  orchestration costs a GPU per iteration (pickup poll, process start-up, API round-trips).
Prints a table and writes bench/results/utilisation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SLOTS = 2

from bench.experiment import make_repo  # noqa: E402
from bench.loops import clean_env, hard_timeout  # noqa: E402
from bench.slow_proposer import install  # noqa: E402
from bench.stack import CLI, prefect_stack  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", default="60", help="comma-separated training seconds")
    parser.add_argument("--iterations", type=int, default=8, help="ideas per loop after the baseline")
    parser.add_argument("--proposers", default="mutate,slow")
    parser.add_argument("--query-seconds", type=float, default=1.0)
    parser.add_argument("--long", action="store_true", help="also the 300 s budget (4 ideas)")
    args = parser.parse_args(argv)
    plans = [(float(b), args.iterations) for b in args.budgets.split(",")] + ([(300.0, 4)] if args.long else [])
    work = Path(tempfile.mkdtemp(prefix="bench-utilisation-"))
    env = clean_env(work, 0)
    plugins = work / "plugins"  # `slow` as an entry point, for this process and (PYTHONPATH) the workers' runs
    install(plugins)
    shutil.copy(ROOT / "bench" / "slow_proposer.py", plugins)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugins), env.get("PYTHONPATH")]))
    results = []
    with prefect_stack(work, env, slots=SLOTS, query_seconds=args.query_seconds) as stack_env:
        os.environ.update({k: v for k, v in stack_env.items() if k.startswith("PREFECT_")})
        for budget, iterations in plans:
            for proposer in args.proposers.split(","):
                results.append(one_loop(work, stack_env, budget, iterations, proposer))
                print(row(results[-1]), flush=True)
    report = {"machine": f"{os.cpu_count()} cores", "slots": SLOTS, "runs": results}
    print(table(results))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "utilisation.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


def one_loop(work: Path, env: dict, budget: float, iterations: int, proposer: str) -> dict:
    tag = f"u{int(budget)}-{proposer}"
    repo = make_repo(work / tag, hard_timeout(budget), command=f"FAKE_TRAIN_SECONDS={budget:g} {{python}} train.py")
    args = ["run", "--deployed", "--wait", "--repo", str(repo), "--tag", tag, "--iterations", str(iterations)]
    load_before, started = os.getloadavg()[0], time.monotonic()
    done = subprocess.run(
        [*CLI, *args, "--parallel", str(SLOTS), "--proposer", proposer],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {tag} loop failed (exit {done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return {
        "budget_s": budget,
        "proposer": proposer,
        "iterations": iterations,
        "command_wall_s": round(time.monotonic() - started, 1),
        "load": round((load_before + os.getloadavg()[0]) / 2, 1),
        **measure(tag, budget),
    }


def measure(tag: str, budget: float) -> dict:
    from autoresearch.runs import find

    trainings = sorted(find("train-on-gpu", tag), key=lambda run: run.start_time)
    seconds = lambda run: (run.end_time - run.start_time).total_seconds()  # noqa: E731
    candidates = [run for run in trainings if " · iter 0000 · " not in run.name]
    span = (max(r.end_time for r in candidates) - min(r.start_time for r in candidates)).total_seconds()
    whole = (max(r.end_time for r in trainings) - min(r.start_time for r in trainings)).total_seconds()
    gaps = slot_gaps(candidates)
    med = lambda values: round(median(values), 2) if values else None  # noqa: E731
    return {
        "trainings": len(trainings),
        "utilisation": round(sum(map(seconds, candidates)) / (SLOTS * span), 3),
        "utilisation_whole": round(sum(map(seconds, trainings)) / (SLOTS * whole), 3),
        "slot_gap_s_median": med([g["gap"] for g in gaps]),
        "slot_gap_s_max": round(max(g["gap"] for g in gaps), 2) if gaps else None,
        "gap_pickup_s_median": med([g["pickup"] for g in gaps]),
        "gap_startup_s_median": med([g["startup"] for g in gaps]),
        "in_run_beyond_training_s_median": med([seconds(run) - budget for run in candidates]),
    }


def slot_gaps(trainings: list) -> list[dict[str, float]]:
    """Per slot worker, from one training's end to the next one's start: `pickup` (the previous process
    exits, the worker polls and submits the next run: Pending) and `startup` (Pending to Running: a new
    Python process imports Prefect and the flow, the engine sets the run Running)."""
    by_slot: dict[str, list] = {}
    for run in trainings:
        by_slot.setdefault((run.labels or {}).get("prefect.worker.name", "?"), []).append(run)
    gaps = []
    for runs in by_slot.values():
        for a, b in zip(runs, runs[1:], strict=False):
            pending = _pending_time(b.id) or b.start_time
            gaps.append(
                {
                    "gap": (b.start_time - a.end_time).total_seconds(),
                    "pickup": (pending - a.end_time).total_seconds(),
                    "startup": (b.start_time - pending).total_seconds(),
                }
            )
    return gaps


def _pending_time(run_id):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        states = client.read_flow_run_states(run_id)
    return next((state.timestamp for state in states if state.type.value == "PENDING"), None)


def row(r: dict) -> str:
    return (
        f"{r['budget_s']:>7g}{r['proposer']:>9}{r['iterations']:>6}{r['utilisation']:>13.3f}{r['utilisation_whole']:>8.3f}"
        f"{r['slot_gap_s_median']!s:>11}{r['gap_pickup_s_median']!s:>9}{r['gap_startup_s_median']!s:>9}"
        f"{r['in_run_beyond_training_s_median']!s:>9}{r['command_wall_s']:>9}{r['load']:>6}"
    )


def table(results: list[dict]) -> str:
    head = f"{'budget':>7}{'proposer':>9}{'ideas':>6}{'utilisation':>13}{'whole':>8}{'gap med s':>11}{'pickup':>9}{'startup':>9}{'in-run':>9}{'wall s':>9}{'load':>6}"
    return "\n".join([head, *map(row, results)])


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
