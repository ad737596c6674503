"""What local mode's Prefect settings buy: HTTP 503 retries ("database is locked") and seconds per iteration.

    python -m bench.local_settings [--iterations 10] [--train-seconds 1]

Runs the research loop in this process (as `autoresearch run` does) twice on fresh repos and fresh
ephemeral API servers: with Prefect's defaults (only heartbeats off and 120 s to start the server) and with `local_mode()`'s settings,
counting the client's retries of 503 answers (each one waits ~2 s). Prints a table and writes
bench/results/local_settings.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.loops import clean_env, hard_timeout

RESULTS = Path(__file__).resolve().parent / "results"
RETRY_LOG = "Received response with retryable status code 503"


def run_variant(variant: str, iterations: int, train_seconds: float) -> dict:
    """One variant in a fresh interpreter (a fresh ephemeral server); its JSON line."""
    with tempfile.TemporaryDirectory(prefix="autoresearch-bench-") as workdir:
        env = clean_env(Path(workdir), train_seconds)
        command = [sys.executable, "-m", "bench.local_settings", "--child", variant, "--workdir", workdir]
        command += ["--iterations", str(iterations), "--train-seconds", str(train_seconds)]
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{variant} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def child(variant: str, workdir: Path, iterations: int, train_seconds: float) -> None:
    import time

    from autoresearch.flows.research_loop import research_loop
    from prefect.settings import (
        PREFECT_FLOWS_HEARTBEAT_FREQUENCY,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    from autoresearch.prefect_tuning import local_settings
    from bench.experiment import make_repo

    retries: list[float] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if RETRY_LOG in record.getMessage():
                retries.append(time.time())

    client_logger = logging.getLogger("prefect.client")
    client_logger.setLevel(logging.DEBUG)
    client_logger.addHandler(Count())
    repo = make_repo(workdir / "exp", hard_timeout(train_seconds))
    tuned = local_settings()
    start_up = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS  # both: a loaded machine needs the time to start
    settings = tuned if variant == "tuned" else {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None, start_up: tuned[start_up]}
    with temporary_settings(updates=settings):
        started = time.perf_counter()
        research_loop(repo=str(repo), tag="bench", iterations=iterations, proposer="mutate")
        wall = time.perf_counter() - started
    print(json.dumps({"variant": variant, "iterations": iterations, "wall_s": round(wall, 2), "retries_503": len(retries)}))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--train-seconds", type=float, default=1.0)
    parser.add_argument("--variants", default="defaults,tuned")
    parser.add_argument("--child")
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.workdir, args.iterations, args.train_seconds)
        return []
    rows = [
        {**run_variant(v, args.iterations, args.train_seconds), "loadavg": round(os.getloadavg()[0], 2)}
        for v in args.variants.split(",")
    ]
    print(f"{'variant':<10}{'iters':>6}{'wall s':>9}{'503 retries':>13}{'load':>7}")
    for row in rows:
        print(f"{row['variant']:<10}{row['iterations']:>6}{row['wall_s']:>9.1f}{row['retries_503']:>13}{row['loadavg']:>7.2f}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "local_settings.json").write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
