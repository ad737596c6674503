"""All benchmarks in one command: overhead, idle fraction, soak, deployed slot utilisation (with --long:
deployed soak, search quality).

    python -m bench            # ~35 minutes on 2 cores: overhead (20 iterations), idle (30 s budget), soak (1,000),
                               # deployed 2-slot utilisation at a 60 s budget, mutate and a 20 s proposer (~15 minutes)
    python -m bench --quick    # ~3 minutes: fewer iterations, a 100-iteration soak, no deployed utilisation
    python -m bench --long     # adds the 300 s budget to the idle and utilisation benchmarks (~75 minutes more) and the
                               # 100-iteration deployed soak (bench/soak_deployed.py, ~10 minutes) and
                               # search quality (bench/search.py: regret and false keeps, ~3 minutes)

Tables go to stdout, JSON to bench/results/.
"""

from __future__ import annotations

import argparse

from bench import idle, overhead, search, soak, soak_deployed, utilisation


def main() -> None:
    parser = argparse.ArgumentParser(description="Run every benchmark.")
    parser.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run, numbers are noisier)")
    parser.add_argument("--long", action="store_true", help="also: idle at 300 s, deployed soak, search quality")
    args = parser.parse_args()
    print("== overhead: seconds per iteration beyond training, bash vs autoresearch")
    overhead.main(["--iterations", "5" if args.quick else "20"])
    print("\n== idle fraction")
    idle.main(["--iterations", "1" if args.quick else "3"] + (["--long"] if args.long else []))
    print("\n== soak")
    soak.main(["--iterations", "100" if args.quick else "1000"])
    if not args.quick:
        print("\n== deployed: 2-slot utilisation, window of candidates, fake trainer (60 s budget; --long: 300 s too)")
        utilisation.main(["--budgets", "60"] + (["--long"] if args.long else []))
    if args.long:
        print("\n== deployed soak: 100 iterations, 2 slots, 0-5 s trainer (SQLite)")
        soak_deployed.main(["--iterations", "100"])
        print("\n== search quality: true regret and false keeps per proposer and setting")
        search.main([])


if __name__ == "__main__":
    main()
