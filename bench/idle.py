"""Idle fraction: (wall - training seconds) / wall, at a 30 s (and with --long a 300 s) training budget.

    python -m bench.idle [--iterations 3] [--long] [--proposer-seconds 20] [--budgets 30,300] [--proposers mutate,slow]

With the mutate proposer and with `slow` (bench/slow_proposer.py: mutate after a 20 s wait, an LLM
stand-in). "steady" runs from the baseline's row to the last row (what an overnight loop sees);
"whole" includes start-up. Prints a table, writes bench/results/idle.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench.loops import LoopRun, environment, measure

RESULTS = Path(__file__).resolve().parent / "results"


def table(runs: list[LoopRun]) -> str:
    lines = [
        f"{'budget s':>9}  {'proposer':<10}{'iters':>6}{'idle steady':>13}{'idle whole':>12}{'overhead/iter s':>17}{'load':>7}"
    ]
    for run in runs:
        s = run.summary()
        lines.append(
            f"{s['train_seconds']:>9g}  {s['proposer']:<10}{s['iterations']:>6}{s['idle_fraction_steady']:>13.2%}"
            f"{s['idle_fraction_whole']:>12.2%}{s['overhead_mean_s']:>17.3f}{s['loadavg']:>7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--long", action="store_true", help="also the 300 s budget (about 35 minutes)")
    parser.add_argument("--proposer-seconds", type=float, default=20.0, help="how long the slow proposer takes")
    parser.add_argument("--budgets", help="comma-separated training seconds (default: 30, with --long 30,300)")
    parser.add_argument("--proposers", default="mutate,slow", help="comma-separated, of: mutate, slow")
    parser.add_argument("--out", default="idle.json", help="file name under bench/results/")
    args = parser.parse_args(argv)
    os.environ["SLOW_PROPOSER_SECONDS"] = str(args.proposer_seconds)
    env = environment()
    budgets = [float(b) for b in (args.budgets or ("30,300" if args.long else "30")).split(",")]
    proposers = args.proposers.split(",")
    runs = [measure("local", args.iterations, budget, proposer) for budget in budgets for proposer in proposers]
    print(table(runs))
    RESULTS.mkdir(exist_ok=True)
    result = {"environment": env, "proposer_seconds": args.proposer_seconds, "runs": [run.to_json() for run in runs]}
    (RESULTS / args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
