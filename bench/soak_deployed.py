"""Deployed soak: 100 iterations on 2 slots with a fake trainer that sleeps 0-5 s (uniform, per run).

Starts its own `prefect server` (SQLite, or `--database postgresql`: a throwaway cluster from
tests/postgres.py), `autoresearch deploy` and `autoresearch worker --slots 2`, then one deployed loop
with --parallel 2. While it runs it samples the server database's size and the loop process's RSS;
at the end it checks results.tsv and git and that every row's iteration and training runs are in the API.
    python bench/soak_deployed.py [--iterations 100] [--database sqlite|postgresql]
Prints a table and writes bench/results/soak_deployed[_postgresql].json.
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
from bench.loops import clean_env  # noqa: E402
from bench.stack import CLI, prefect_stack  # noqa: E402
from bench.utilisation import slot_gaps, trainings_of, utilisation  # noqa: E402

SLOTS = 2
MAX_TRAIN_SECONDS = 5.0
SAMPLE_SECONDS = 10.0
RANDOM_SECONDS = f"$({{python}} -c 'import random; print(random.uniform(0, {MAX_TRAIN_SECONDS}))')"
RANDOM_TRAINER = f"FAKE_TRAIN_SECONDS={RANDOM_SECONDS} {{python}} train.py"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-soak-deployed-"))
    database = _postgres() if args.database == "postgresql" else nullcontext(None)
    with database as url, prefect_stack(work, clean_env(work, 0), slots=SLOTS, database_url=url) as env:
        os.environ.update({k: v for k, v in env.items() if k.startswith("PREFECT_")})
        repo = _random_trainer_repo(work / "exp")
        report = soak(repo, env, args.iterations, lambda: _db_bytes(work, url))
    report["database"] = args.database
    _print(report)
    out = ROOT / "bench" / "results" / f"soak_deployed{'' if args.database == 'sqlite' else '_postgresql'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def _postgres():
    import postgres  # tests/postgres.py: initdb in a temp dir, a free port, stopped at the end

    return postgres.cluster()


def _random_trainer_repo(path: Path) -> Path:
    repo = make_repo(path, timeout_seconds=60)
    toml = repo / "autoresearch.toml"
    toml.write_text(toml.read_text().replace('command = "{python} train.py"', f'command = "{RANDOM_TRAINER}"'))
    subprocess.run(["git", "commit", "-qam", "a 0-5 s trainer"], cwd=repo, check=True, env={**os.environ, **_git()})
    return repo


def _git() -> dict[str, str]:
    from bench.experiment import GIT_IDENTITY

    return GIT_IDENTITY


def soak(repo: Path, env: dict, iterations: int, db_bytes) -> dict:
    args = ["run", "--deployed", "--wait", "--repo", str(repo), "--tag", "soak", "--iterations", str(iterations)]
    started = time.monotonic()
    loop = subprocess.Popen([*CLI, *args, "--parallel", str(SLOTS)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    samples = []
    while loop.poll() is None:
        samples.append({"t": round(time.monotonic() - started), "db_bytes": db_bytes(), "loop_rss_kb": _loop_rss_kb()})
        time.sleep(SAMPLE_SECONDS)
    output = loop.stdout.read().decode(errors="replace")
    if loop.returncode != 0:
        raise RuntimeError(f"the soak loop failed (exit {loop.returncode}):\n{output[-3000:]}")
    return {**measure(repo, iterations, time.monotonic() - started), "samples": samples}


def measure(repo: Path, iterations: int, wall: float) -> dict:
    from autoresearch import ledger
    from autoresearch.runs import find

    rows = ledger.read(repo / "results.tsv", "val_bpb")
    ran = lambda run: run.state is not None and run.state.is_completed()  # noqa: E731  (not the one that found no idea)
    iteration_runs, trainings = (list(filter(ran, find(flow, "soak"))) for flow in ("experiment-iteration", "train-on-gpu"))
    seconds = lambda run: (run.end_time - run.start_time).total_seconds()  # noqa: E731
    by_iteration = {run.name.split(" · ")[1]: seconds(run) for run in trainings}
    overheads = [seconds(run) - by_iteration.get(run.name.split(" · ")[1], 0.0) for run in iteration_runs]
    measured = trainings_of("soak")
    fsck = subprocess.run(["git", "fsck", "--no-progress"], cwd=repo, capture_output=True, text=True)
    tip = subprocess.run(["git", "rev-parse", "--short=7", "autoresearch/soak"], cwd=repo, capture_output=True, text=True)
    return {
        "iterations_asked": iterations,
        "rows": len(rows),
        "unique_commits": len({row.commit for row in rows}) == len(rows),
        "branch_at_last_keep": tip.stdout.strip() == ledger.last_keep(rows).commit,
        "git_fsck_ok": fsck.returncode == 0,
        "iteration_runs_in_api": len(iteration_runs),
        "train_runs_in_api": len(trainings),
        "every_row_has_its_runs": len(iteration_runs) == len(rows) == len(trainings),
        "wall_s": round(wall, 1),
        "training_s": round(sum(t.seconds for t in measured), 1),
        "slot_utilisation": utilisation(measured, SLOTS),  # from each training's own start/end
        "slot_gap_s_median": round(median(gap["gap"] for gap in slot_gaps(measured)), 2),
        "overhead_per_iteration_s_median": round(median(overheads), 2),
        "overhead_per_iteration_s_max": round(max(overheads), 2),
    }


def _loop_rss_kb() -> int | None:
    """RSS of the research-loop run's process (the cpu worker started it on this machine)."""
    from autoresearch.runs import find

    running = [run for run in find("research-loop", "soak") if run.state and run.state.is_running()]
    pid = (running[0].infrastructure_pid or "").rpartition(":")[2] if running else ""
    try:
        status = Path(f"/proc/{pid}/status").read_text() if pid.isdigit() else ""
    except OSError:
        return None
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), None)


def _db_bytes(work: Path, url: str | None) -> int:
    if url is None:
        return sum(path.stat().st_size for path in (work / "prefect").glob("prefect.db*"))
    port = url.rsplit(":", 1)[1].split("/")[0]
    size = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-p", port, "-U", "prefect", "-Atc", "select pg_database_size('prefect')", "prefect"],
        capture_output=True,
        text=True,
    )
    return int(size.stdout.strip() or 0)


def _print(report: dict) -> None:
    samples = report.get("samples", [])
    shown = {k: v for k, v in report.items() if k != "samples"}
    if samples:
        rss = [s["loop_rss_kb"] for s in samples if s["loop_rss_kb"]]
        shown["db_mb_first_last"] = f"{samples[0]['db_bytes'] / 1e6:.1f} -> {samples[-1]['db_bytes'] / 1e6:.1f}"
        if rss:
            shown["loop_rss_mb_first_max_last"] = f"{rss[0] / 1e3:.0f} / {max(rss) / 1e3:.0f} / {rss[-1] / 1e3:.0f}"
    width = max(len(key) for key in shown)
    for key, value in shown.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    sys.exit(main())
