"""What monitoring costs: plot and summary build time, artifact sizes, progress-watcher reads.

    python bench/monitoring.py [--rows 6 100 1000] [--out bench/results/monitoring.json]

With PREFECT_API_URL set (a running `prefect server`), it also times one iteration's publishing
(`publish_loop_artifacts`: table + summary with the plot) inside a flow run against that server.
Numbers depend on the machine; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autoresearch.artifacts import ledger_table, progress_png, summary_markdown  # noqa: E402
from autoresearch.models import LedgerRow  # noqa: E402
from autoresearch.progress import estimate  # noqa: E402
from autoresearch.summary import results_frame  # noqa: E402


def night(rows: int, seed: int = 0) -> pd.DataFrame:
    """A synthetic night: ~20% keeps that improve a little, ~70% discards, ~10% crashes."""
    rng = random.Random(seed)
    best, out = 1.0, [LedgerRow(commit="0000000", value=1.0, memory_gb=44.0, status="keep", description="baseline")]
    for n in range(1, rows):
        kind = rng.random()
        if kind < 0.1:
            out.append(LedgerRow(commit=f"{n:07x}", value=0.0, memory_gb=0.0, status="crash", description=f"idea {n} (OOM)"))
        elif kind < 0.3:
            best -= rng.uniform(0.0005, 0.005)
            out.append(LedgerRow(commit=f"{n:07x}", value=best, memory_gb=44.0, status="keep", description=f"idea {n}: LR x1.5"))
        else:
            value = best + rng.uniform(-0.0005, 0.02)
            out.append(LedgerRow(commit=f"{n:07x}", value=value, memory_gb=44.0, status="discard", description=f"idea {n}"))
    return results_frame(out)


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[6, 100, 1000])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report: dict = {"rows": {}}
    for count in args.rows:
        rows = night(count)
        png_s, png = timed(lambda rows=rows: progress_png(rows, "val_bpb", "minimize", "bench"))
        md_s, markdown = timed(lambda rows=rows, png=png: summary_markdown(rows, "val_bpb", "minimize", "bench", png))
        table = json.dumps(ledger_table(rows, "val_bpb"))
        report["rows"][count] = {
            "plot_seconds": round(png_s, 3),
            "png_kb": round(len(png) / 1024, 1),
            "summary_markdown_seconds": round(md_s, 4),
            "summary_markdown_kb": round(len(markdown) / 1024, 1),
            "ledger_table_kb": round(len(table) / 1024, 1),
        }
        print(
            f"{count:5d} rows: plot {png_s * 1000:6.0f} ms, PNG {len(png) / 1024:5.1f} KB, "
            f"summary artifact {len(markdown) / 1024:5.1f} KB, ledger table {len(table) / 1024:6.1f} KB"
        )

    with tempfile.TemporaryDirectory() as tmp:  # one progress tick on a 200 MB log: only its tail is read
        log = Path(tmp) / "run.log"
        with open(log, "wb") as handle:
            handle.write(b"x" * (200 << 20))
            handle.write(b"\rstep 00042 (12.3%) | loss: 3.0")
        tick_s, percent = timed(lambda: estimate(log, 10.0, 300.0), repeat=20)
        report["progress_tick_seconds_200mb_log"] = tick_s
        print(f"progress tick on a 200 MB log: {tick_s * 1e6:.0f} us -> {percent}%")

    if os.environ.get("PREFECT_API_URL"):
        from prefect import flow

        from autoresearch.artifacts import publish_loop_artifacts

        for count in args.rows:
            rows = night(count)

            @flow(name="bench-monitoring")
            def publish(rows=rows) -> float:
                started = time.perf_counter()
                publish_loop_artifacts(rows, "val_bpb", "minimize", "bench")
                return time.perf_counter() - started

            seconds = publish()
            report["rows"][count]["publish_seconds"] = round(seconds, 3)
            print(f"{count:5d} rows: publish_loop_artifacts against {os.environ['PREFECT_API_URL']}: {seconds * 1000:.0f} ms")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
