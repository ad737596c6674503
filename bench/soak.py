"""Soak: 1,000 iterations with a 0 s fake trainer; per-iteration time, the loop's RSS, and integrity at the end.

    python -m bench.soak [--iterations 1000]

RSS is the loop process's VmRSS when results.tsv reached row 10, 100, 1,000 (the iteration numbers;
row 0 is the baseline). Integrity: rows == iterations + 1, no duplicate commits, every row's commit
exists, the branch tip is the last keep, the read-only file is unchanged, `git fsck` is clean.
Prints a table, writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.loops import TAG, LoopRun, environment, local

RESULTS = Path(__file__).resolve().parent / "results"


def git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)


def integrity(repo: Path, iterations: int) -> dict:
    """What must hold after any number of iterations."""
    rows = [line.split("\t") for line in (repo / "results.tsv").read_text().splitlines()[1:]]
    commits = [row[0] for row in rows]
    keeps = [row[0] for row in rows if row[3] == "keep"]
    tip = git(repo, "rev-parse", f"autoresearch/{TAG}").stdout.strip()
    missing = [c for c in commits if git(repo, "cat-file", "-e", f"{c}^{{commit}}").returncode != 0]
    checks = {
        "rows": len(rows),
        "rows_ok": len(rows) == iterations + 1,
        "duplicate_commits": len(commits) - len(set(commits)),
        "missing_commits": len(missing),
        "tip_is_last_keep": bool(keeps) and tip.startswith(keeps[-1]),
        "readonly_unchanged": git(repo, "diff", "--quiet", "HEAD~0", "--", "prepare.py").returncode == 0
        and git(repo, "log", "--format=%h", f"autoresearch/{TAG}", "--", "prepare.py").stdout.count("\n") == 1,
        "fsck_clean": git(repo, "fsck", "--no-progress").returncode == 0,
        "keeps": len(keeps),
        "crashes": sum(row[3] == "crash" for row in rows),
    }
    checks["ok"] = all(checks[k] for k in ("rows_ok", "tip_is_last_keep", "readonly_unchanged", "fsck_clean")) and not (
        checks["duplicate_commits"] or checks["missing_commits"]
    )
    return checks


def checkpoints(run: LoopRun) -> list[dict]:
    """RSS and recent per-iteration time at iterations 10, 100, 500, 1,000 (those reached) and the last."""
    gaps = run.gaps()
    marks = sorted({i for i in (10, 100, 500, 1000) if i < run.rows} | {run.rows - 1})
    return [
        {
            "iteration": i,
            "rss_mb": round(run.row_rss_kb[i] / 1024, 1),
            "seconds_per_iteration": round(statistics.mean(gaps[max(0, i - 10) : i]), 3) if i else None,
        }
        for i in marks
    ]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000)
    args = parser.parse_args(argv)
    env = environment()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as workdir:
        run = local(Path(workdir), args.iterations, 0.0)
        checks = integrity(Path(workdir) / "exp", args.iterations)
        db = Path(workdir) / "prefect" / "prefect.db"
        db_mb = round(sum(p.stat().st_size for p in db.parent.glob("prefect.db*")) / 2**20, 1) if db.exists() else None
    env["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    marks = checkpoints(run)
    result = {
        "environment": env,
        "summary": run.summary(),
        "checkpoints": marks,
        "integrity": checks,
        "prefect_db_mb": db_mb,
        "row_times": run.row_times,
        "row_rss_kb": run.row_rss_kb,
    }
    print(f"{'iteration':>10}{'RSS MB':>9}{'s/iter (last 10)':>18}")
    for mark in marks:
        per = "-" if mark["seconds_per_iteration"] is None else f"{mark['seconds_per_iteration']:.3f}"
        print(f"{mark['iteration']:>10}{mark['rss_mb']:>9.1f}{per:>18}")
    s = run.summary()
    print(
        f"{s['iterations']} iterations in {s['wall_s']:.0f} s: {s['overhead_mean_s']:.3f} s/iteration (median {s['overhead_median_s']:.3f}, "
        f"max {s['overhead_max_s']:.3f}); Prefect database {db_mb} MB; load {env['loadavg_start'][0]} -> {env['loadavg_end'][0]}"
    )
    print("integrity: " + ", ".join(f"{k}={v}" for k, v in checks.items()))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=1))
    if not checks["ok"]:
        sys.exit(1)
    return result


if __name__ == "__main__":
    main()
