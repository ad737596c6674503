"""Orchestration overhead: the same N iterations by plain bash and by `autoresearch run`, seconds beyond training.

    python -m bench.overhead [--iterations 20] [--train-seconds 1] [--modes bash,local]

Prints a table and writes bench/results/overhead.json. Each mode is one function in bench/loops.py
(`deployed` is the extension point for deployed mode).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.loops import MODES, LoopRun, environment, measure

RESULTS = Path(__file__).resolve().parent / "results"


def table(runs: list[LoopRun]) -> str:
    bash = next((r for r in runs if r.mode == "bash"), None)
    lines = [
        (
            f"{'mode':<10}{'proposer':<10}{'iters':>6}{'train s':>8}{'startup s':>10}{'overhead/iter s':>17}"
            f"{'median s':>10}{'max s':>8}{'x bash':>8}{'load':>7}"
        )
    ]
    for run in runs:
        s = run.summary()
        ratio = (
            f"{s['overhead_mean_s'] / bash.overhead_per_iteration():.1f}" if bash and bash.overhead_per_iteration() > 0 else "-"
        )
        lines.append(
            f"{s['mode']:<10}{s['proposer']:<10}{s['iterations']:>6}{s['train_seconds']:>8g}{s['startup_s']:>10.2f}"
            f"{s['overhead_mean_s']:>17.3f}{s['overhead_median_s']:>10.3f}{s['overhead_max_s']:>8.3f}{ratio:>8}"
            f"{s['loadavg']:>7.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--train-seconds", type=float, default=1.0)
    parser.add_argument("--modes", default="bash,local", help=f"comma-separated, of: {', '.join(MODES)}")
    args = parser.parse_args(argv)
    env = environment()
    runs = [measure(mode, args.iterations, args.train_seconds) for mode in args.modes.split(",")]
    result = {"environment": env, "runs": [run.to_json() for run in runs]}
    print(table(runs))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
