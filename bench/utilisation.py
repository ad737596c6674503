"""Deployed mode's GPU slot utilisation: 2 slots, a fake trainer, the window of candidates (--parallel 2).

    python -m bench.utilisation [--budgets 60] [--iterations 8] [--proposers mutate,slow] [--long]

One throwaway stack (bench/stack.py: `prefect server`, `autoresearch deploy`, `autoresearch worker --slots 2`)
runs one deployed loop per (budget, proposer); `slow` is bench/slow_proposer.py (20 s per idea), installed as
an entry point the workers' processes find through PYTHONPATH. `--long` adds the 300 s budget.

Measured from each training's own start/end (the report every `train-on-gpu` run sends back through the API;
a slot's next run starts before the slot frees and waits for it, so the runs' own timestamps overlap):
- utilisation = sum of training seconds / (slots x wall), wall from the first candidate training's start
  to the last one's end (the baseline trains alone by protocol: `whole` counts it too);
- slot gap = seconds between one training's end and the next one's start on the same slot: what the
  orchestration costs a GPU per iteration; `ready` = the share of those hand-overs where the next run's
  process was already up (Running) when the slot freed.
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Training:
    """One training as the GPU saw it (the report's own clock) and its run as the API saw it."""

    name: str
    worker: str  # the slot's worker
    started: float  # the training process started (unix time)
    ended: float
    run_started: float  # the train-on-gpu run went Running: its process was up, checking out, waiting for the slot

    @property
    def seconds(self) -> float:
        return self.ended - self.started


def trainings_of(tag: str) -> list[Training]:
    """The completed trainings of loop `tag`, in the order they started training."""
    from autoresearch import train_report
    from autoresearch.runs import find

    found = []
    for run in find("train-on-gpu", tag):
        if run.state is None or not run.state.is_completed():
            continue
        report = train_report.fetch(run.id)
        worker = (run.labels or {}).get("prefect.worker.name", "?")
        found.append(Training(run.name, worker, report.started_at, report.ended_at, run.start_time.timestamp()))
    return sorted(found, key=lambda t: t.started)


def utilisation(trainings: list[Training], slots: int = SLOTS) -> float:
    """Sum of training seconds / (slots x wall), wall from the first training's start to the last one's end."""
    wall = max(t.ended for t in trainings) - min(t.started for t in trainings)
    return round(sum(t.seconds for t in trainings) / (slots * wall), 3)


def slot_gaps(trainings: list[Training]) -> list[dict[str, float]]:
    """Per slot, from one training's end to the next one's start (`gap`: what the orchestration costs a GPU
    per iteration) and whether the next run's process was already up when the slot freed (`ready`)."""
    by_slot: dict[str, list[Training]] = {}
    for training in trainings:
        by_slot.setdefault(training.worker, []).append(training)
    return [
        {"gap": b.started - a.ended, "ready": float(b.run_started <= a.ended)}
        for mine in by_slot.values()
        for a, b in zip(mine, mine[1:], strict=False)
    ]


def measure(tag: str, budget: float) -> dict:
    trainings = trainings_of(tag)
    candidates = [t for t in trainings if " · iter 0000 · " not in t.name]
    gaps = slot_gaps(candidates)
    med = lambda values: round(median(values), 2) if values else None  # noqa: E731
    return {
        "trainings": len(trainings),
        "utilisation": utilisation(candidates),
        "utilisation_whole": utilisation(trainings),
        "slot_gap_s_median": med([g["gap"] for g in gaps]),
        "slot_gap_s_max": round(max(g["gap"] for g in gaps), 2) if gaps else None,
        "next_ready_share": round(sum(g["ready"] for g in gaps) / len(gaps), 2) if gaps else None,
        "training_beyond_budget_s_median": med([t.seconds - budget for t in candidates]),
    }


def row(r: dict) -> str:
    return (
        f"{r['budget_s']:>7g}{r['proposer']:>9}{r['iterations']:>6}{r['utilisation']:>13.3f}{r['utilisation_whole']:>8.3f}"
        f"{r['slot_gap_s_median']!s:>11}{r['slot_gap_s_max']!s:>9}{r['next_ready_share']!s:>7}"
        f"{r['training_beyond_budget_s_median']!s:>9}{r['command_wall_s']:>9}{r['load']:>6}"
    )


def table(results: list[dict]) -> str:
    head = f"{'budget':>7}{'proposer':>9}{'ideas':>6}{'utilisation':>13}{'whole':>8}{'gap med s':>11}{'max':>9}{'ready':>7}{'beyond':>9}{'wall s':>9}{'load':>6}"
    return "\n".join([head, *map(row, results)])


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
